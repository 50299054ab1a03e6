//! oxivirt-schema (boundary doc to be written).
