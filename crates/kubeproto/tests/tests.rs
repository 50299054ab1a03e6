//! Integration tests for oxivirt-kubeproto: bodies captured from a real kubectl, and
//! hand-encoded bodies for every supported kind and for malformed input.

mod encoder;
mod kinds;
mod kubectl;
mod malformed;
