//! oxivirt-store (boundary doc to be written).
