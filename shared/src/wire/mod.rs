//! Zero-copy wire parsers, smoltcp `wire` style. Implementation pending.
