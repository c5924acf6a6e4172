"""Who may do what: tokens, the access policy and security headers, and log redaction."""
