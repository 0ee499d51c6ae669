"""The pure core of a night: rules compiled to per-customer numbers (``metrics``), every customer
classified (``classify``) and the changes planned against the stored values (``diff``).

Numpy and the rule models only: no SQLAlchemy, no smtplib, no files.
"""
