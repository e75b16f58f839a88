//! The qemu-virt board as the host library sees it: two windows (the `/dev/shm` files QEMU
//! maps as ivshmem BARs, at the bus addresses the image assigned them from `board.toml`) and
//! QEMU's liveness. The host reads the GPU BAR through its own mapping of the same file, so no
//! device reader is needed.

use crate::qemu::Vm;
use splitrx_host::seam::{BoardSeam, SeamError, WindowDesc};
use std::sync::Arc;

/// The host seam of a running qemu-virt board.
#[derive(Debug)]
pub struct QemuSeam {
    host: WindowDesc,
    devices: [WindowDesc; 1],
    vm: Arc<Vm>,
}

impl QemuSeam {
    pub(crate) fn new(host: WindowDesc, bar: WindowDesc, vm: Arc<Vm>) -> QemuSeam {
        QemuSeam {
            host,
            devices: [bar],
            vm,
        }
    }
}

impl BoardSeam for QemuSeam {
    fn board(&self) -> &str {
        "qemu-virt"
    }
    fn host_window(&self) -> &WindowDesc {
        &self.host
    }
    fn device_windows(&self) -> &[WindowDesc] {
        &self.devices
    }
    fn board_alive(&self) -> Result<(), SeamError> {
        self.vm.alive().map_err(SeamError::Gone)
    }
}
