//! End-to-end tests: storage and CDI (issue 5).
