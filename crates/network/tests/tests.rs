//! Component tests of oxivirt-network.
