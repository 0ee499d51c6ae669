"""What people read: the digest (HTML and text e-mail), its delivery over SMTP, the CSV exports
and the penetration report. Files are written whole or not at all."""
