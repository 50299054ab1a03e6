//! End-to-end tests: VM runtime with real QEMU (issue 4).
