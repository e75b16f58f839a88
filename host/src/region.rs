// moved to shared; kept so host/src/sim_run.rs and tests/ compile until the seam merge
pub use splitrx_shared::region::*;
