"""The admin API (`/admin/*`): managing SMART clients and users over HTTP, for administrators only."""
