//! End-to-end tests: consoles, SSH, RBAC (issue 7).
