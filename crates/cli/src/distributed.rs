//! The workers of a run: this process alone, or, with `--distributed` in a
//! binary built with the `mpi` feature, the ranks of `mpirun`'s
//! `MPI_COMM_WORLD`.
//!
//! The sum is a reduction to rank 0 followed by a broadcast from it, so
//! every rank gets rank 0's bits (the same for a fixed rank count), and a
//! failure on any rank is reported and then `MPI_Abort`s all of them:
//! nothing waits forever in a collective another rank will not join.

use anyhow::{Result, bail};
use recurrent::train::{AllReduce, SingleProcess, check_same};

/// This process's part in a run.
pub enum Workers {
    /// No `--distributed`: one worker.
    Single(SingleProcess),
    /// The ranks of `mpirun`.
    #[cfg(feature = "mpi")]
    Mpi(mpi_world::MpiWorld),
}

impl Workers {
    /// One worker, or (`distributed`) the MPI ranks. Errors: `distributed`
    /// in a binary without MPI support, or outside `mpirun`.
    pub fn new(distributed: bool) -> Result<Self> {
        if !distributed {
            return Ok(Self::Single(SingleProcess));
        }
        Self::mpi()
    }

    #[cfg(not(feature = "mpi"))]
    fn mpi() -> Result<Self> {
        bail!(
            "--distributed: this rnn was built without MPI support (build it with `cargo build --release -p rnn-cli --features mpi`, on Open MPI: see the README)"
        )
    }

    #[cfg(feature = "mpi")]
    fn mpi() -> Result<Self> {
        const LAUNCHER_VARS: [&str; 4] = [
            "OMPI_COMM_WORLD_SIZE",
            "PMIX_RANK",
            "PMI_SIZE",
            "MPI_LOCALNRANKS",
        ];
        if !LAUNCHER_VARS.iter().any(|v| std::env::var_os(v).is_some()) {
            bail!(
                "--distributed: not started by mpirun (run `mpirun -np N rnn ... --distributed`)"
            );
        }
        Ok(Self::Mpi(mpi_world::MpiWorld::init()?))
    }

    /// Checks that every rank runs the same binary with the same command
    /// line (both hashed): ranks that would train different models are
    /// refused before any work.
    pub fn check_same_command(&mut self) -> Result<()> {
        if self.world_size() == 1 {
            return Ok(());
        }
        let mut h = Fnv::default();
        for arg in std::env::args_os() {
            h.write(arg.as_encoded_bytes());
            h.write(&[0]);
        }
        let exe = std::env::current_exe().and_then(std::fs::read);
        h.write(&exe.unwrap_or_default());
        check_same(self, h.0, "the ranks' binaries or command lines")?;
        Ok(())
    }

    /// Ends the run with `result`: on an error in a run of several ranks,
    /// reports it with this rank's number and aborts every rank (exit 1).
    pub fn finish(self, result: Result<()>) -> Result<()> {
        match (result, self) {
            #[cfg(feature = "mpi")]
            (Err(e), Self::Mpi(w)) if w.size() > 1 => {
                let msg = format!("{e:#}").replace('\n', " ");
                eprintln!("rnn: error (rank {} of {}): {msg}", w.rank(), w.size());
                w.abort(1)
            }
            (result, _) => result,
        }
    }
}

impl AllReduce for Workers {
    fn rank(&self) -> usize {
        match self {
            Self::Single(s) => s.rank(),
            #[cfg(feature = "mpi")]
            Self::Mpi(w) => w.rank(),
        }
    }

    fn world_size(&self) -> usize {
        match self {
            Self::Single(s) => s.world_size(),
            #[cfg(feature = "mpi")]
            Self::Mpi(w) => w.size(),
        }
    }

    fn sum(&mut self, buf: &mut [f32]) -> recurrent::Result<()> {
        match self {
            Self::Single(s) => s.sum(buf),
            #[cfg(feature = "mpi")]
            Self::Mpi(w) => {
                w.sum(buf);
                Ok(())
            }
        }
    }

    fn broadcast(&mut self, buf: &mut [f32]) -> recurrent::Result<()> {
        match self {
            Self::Single(s) => s.broadcast(buf),
            #[cfg(feature = "mpi")]
            Self::Mpi(w) => {
                w.broadcast(buf);
                Ok(())
            }
        }
    }
}

/// FNV-1a, 64 bits.
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Self(0xCBF2_9CE4_8422_2325)
    }
}

impl Fnv {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01B3);
        }
    }
}

#[cfg(feature = "mpi")]
mod mpi_world {
    use anyhow::{Result, anyhow};
    use mpi::collective::SystemOperation;
    use mpi::environment::Universe;
    use mpi::topology::SimpleCommunicator;
    use mpi::traits::*;

    /// `MPI_COMM_WORLD`, initialised once; finalised when dropped.
    pub struct MpiWorld {
        world: SimpleCommunicator,
        /// Rank 0's receive buffer of the reduction.
        scratch: Vec<f32>,
        // Dropped last: MPI_Finalize.
        _universe: Universe,
    }

    impl MpiWorld {
        pub fn init() -> Result<Self> {
            let universe = mpi::initialize()
                .ok_or_else(|| anyhow!("--distributed: MPI was initialised already"))?;
            Ok(Self {
                world: universe.world(),
                scratch: Vec::new(),
                _universe: universe,
            })
        }

        pub fn rank(&self) -> usize {
            self.world.rank() as usize
        }

        pub fn size(&self) -> usize {
            self.world.size() as usize
        }

        /// The element-wise sum of every rank's `buf`, reduced at rank 0
        /// and broadcast from there.
        pub fn sum(&mut self, buf: &mut [f32]) {
            let root = self.world.process_at_rank(0);
            if self.world.rank() == 0 {
                self.scratch.clear();
                self.scratch.resize(buf.len(), 0.0);
                root.reduce_into_root(&*buf, &mut self.scratch[..], SystemOperation::sum());
                buf.copy_from_slice(&self.scratch);
            } else {
                root.reduce_into(&*buf, SystemOperation::sum());
            }
            root.broadcast_into(buf);
        }

        pub fn broadcast(&mut self, buf: &mut [f32]) {
            self.world.process_at_rank(0).broadcast_into(buf);
        }

        pub fn abort(&self, code: i32) -> ! {
            self.world.abort(code)
        }
    }
}
