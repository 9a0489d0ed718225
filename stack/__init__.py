"""The local stack: install, start, supervise and check the platform's services without Docker."""
