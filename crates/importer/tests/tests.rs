//! Component tests of oxivirt-importer.
