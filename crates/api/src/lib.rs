//! oxivirt-api (boundary doc to be written).
