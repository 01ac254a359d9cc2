//! Flush-to-zero (FTZ) and denormals-are-zero (DAZ) for the threads that run
//! kernels.
//!
//! Gradients that vanish through a long sequence become subnormal numbers,
//! and x86 cores handle those through a micro-code assist about 20x slower
//! than normal arithmetic. With FTZ and DAZ set, subnormal results and inputs
//! are read as zero, which changes no result by more than 1.2e-38.
//!
//! The library's worker threads set both flags when they start
//! ([`crate::threads`]); the calling thread gets them for the duration of a
//! library call through [`FlushDenormals`], which restores the caller's
//! floating-point mode when dropped.

/// Sets FTZ and DAZ on the current thread until dropped, then restores the
/// previous control/status register.
#[derive(Debug)]
#[must_use = "the flags are restored when the guard is dropped"]
pub struct FlushDenormals {
    #[cfg(target_arch = "x86_64")]
    saved: u32,
}

#[cfg(target_arch = "x86_64")]
mod imp {
    /// MXCSR bit 15: flush denormal results to zero.
    pub const FTZ: u32 = 1 << 15;
    /// MXCSR bit 6: treat denormal inputs as zero.
    pub const DAZ: u32 = 1 << 6;

    pub fn read() -> u32 {
        let mut value: u32 = 0;
        // SAFETY: `stmxcsr` stores the 32-bit MXCSR register to the given
        // address, which points to a live, writable u32.
        unsafe {
            core::arch::asm!("stmxcsr [{}]", in(reg) &mut value, options(nostack, preserves_flags));
        }
        value
    }

    pub fn write(value: u32) {
        // SAFETY: `ldmxcsr` loads MXCSR from a live u32. The only values
        // written are ones read from MXCSR, possibly with the FTZ/DAZ bits set,
        // both valid on every x86-64 CPU with SSE2 (all of them).
        unsafe {
            core::arch::asm!("ldmxcsr [{}]", in(reg) &value, options(nostack, preserves_flags, readonly));
        }
    }
}

impl FlushDenormals {
    /// Turns FTZ and DAZ on for the current thread.
    pub fn new() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            let saved = imp::read();
            imp::write(saved | imp::FTZ | imp::DAZ);
            Self { saved }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            Self {}
        }
    }

    /// Turns FTZ and DAZ on for the current thread for good (worker threads).
    pub fn set_permanently() {
        #[cfg(target_arch = "x86_64")]
        imp::write(imp::read() | imp::FTZ | imp::DAZ);
    }

    /// Whether FTZ and DAZ are both on for the current thread.
    pub fn active() -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            let v = imp::read();
            v & imp::FTZ != 0 && v & imp::DAZ != 0
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    }
}

impl Default for FlushDenormals {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for FlushDenormals {
    fn drop(&mut self) {
        #[cfg(target_arch = "x86_64")]
        imp::write(self.saved);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guard_flushes_and_restores() {
        let before = FlushDenormals::active();
        {
            let _g = FlushDenormals::new();
            assert!(FlushDenormals::active());
            // 1e-30 * 1e-10 = 1e-40 is subnormal: flushed to zero.
            let tiny = std::hint::black_box(1e-30f32);
            assert_eq!(
                std::hint::black_box(tiny * std::hint::black_box(1e-10f32)),
                0.0
            );
        }
        assert_eq!(FlushDenormals::active(), before);
    }
}
