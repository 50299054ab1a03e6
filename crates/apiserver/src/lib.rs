//! oxivirt-apiserver (boundary doc to be written).
