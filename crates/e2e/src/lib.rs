//! End-to-end tests of oxivirt driven through real clients (see `tests/`).
