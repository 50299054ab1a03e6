//! The crate's one integration-test binary: golden QEMU command lines for VMI fixtures,
//! and real QEMU (TCG) runs of the project's test guest through `run`.

mod accepted;
mod golden;
mod qemu;
mod support;
