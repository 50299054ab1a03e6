//! End-to-end tests: networking (issue 6).
