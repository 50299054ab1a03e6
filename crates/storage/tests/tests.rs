//! Component tests of oxivirt-storage.
