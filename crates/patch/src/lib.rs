//! oxivirt-patch (boundary doc to be written).
