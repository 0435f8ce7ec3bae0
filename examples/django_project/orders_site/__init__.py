"""A minimal Django project guarded by securityhandler."""
