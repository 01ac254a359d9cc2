//! The NTM's configuration and its parameter layout (docs/ntm.md).

use std::collections::HashMap;

use crate::error::{Error, Result};

/// The controller network.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Controller {
    /// An LSTM cell (gates `i, f, g, o`, as `torch.nn.LSTMCell`), with a
    /// learned initial state.
    Lstm,
    /// One feed-forward layer, `h = tanh(W u + b)`.
    FeedForward,
}

impl Controller {
    /// `lstm` or `feedforward`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Lstm => "lstm",
            Self::FeedForward => "feedforward",
        }
    }

    /// Parses [`Controller::name`].
    pub fn from_name(name: &str) -> Result<Self> {
        match name {
            "lstm" => Ok(Self::Lstm),
            "feedforward" => Ok(Self::FeedForward),
            _ => Err(Error::Config(format!(
                "unknown controller {name:?} (lstm or feedforward)"
            ))),
        }
    }
}

/// How the memory starts at every sequence.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum MemoryInit {
    /// Every cell holds this value (Collier & Beel 2018: a small constant
    /// converges fastest; the default is `1e-6`).
    Constant(f32),
    /// A learned `[N, M]` parameter, `init.memory`.
    Learned,
}

/// A Neural Turing Machine's sizes (see docs/ntm.md for the symbols).
#[derive(Clone, Debug, PartialEq)]
pub struct NtmConfig {
    /// The controller network.
    pub controller: Controller,
    /// `I`: features per input step.
    pub input_size: usize,
    /// `O`: logits per output step.
    pub output_size: usize,
    /// `C`: the controller's hidden size.
    pub controller_size: usize,
    /// `N`: memory rows.
    pub memory_rows: usize,
    /// `M`: memory width.
    pub memory_width: usize,
    /// `R`: read heads.
    pub read_heads: usize,
    /// `W`: write heads.
    pub write_heads: usize,
    /// `S`: the heads shift by `-S..=S` rows.
    pub shift_range: usize,
    /// The initial memory.
    pub memory: MemoryInit,
    /// Seed of the parameter initialisation.
    pub seed: u64,
}

/// Most heads of one kind.
pub const MAX_HEADS: usize = 64;
/// Most elements of any size and of the parameter count.
const MAX_PARAMETERS: usize = 1 << 32;

impl NtmConfig {
    /// The copy-task setup of Graves et al. 2014: LSTM-100 controller,
    /// memory `128 x 20`, one read and one write head, shifts `-1..=1`;
    /// `bits`-bit vectors plus a delimiter channel in, `bits` logits out.
    pub fn copy_task(bits: usize) -> Self {
        Self {
            controller: Controller::Lstm,
            input_size: bits + 1,
            output_size: bits,
            controller_size: 100,
            memory_rows: 128,
            memory_width: 20,
            read_heads: 1,
            write_heads: 1,
            shift_range: 1,
            memory: MemoryInit::Constant(1e-6),
            seed: 0,
        }
    }

    /// `K = 2S + 1`, the number of shifts.
    pub fn shifts(&self) -> usize {
        2 * self.shift_range + 1
    }

    /// Length of a read head's parameter chunk, `M + K + 3`.
    pub fn read_chunk(&self) -> usize {
        self.memory_width + self.shifts() + 3
    }

    /// Length of a write head's parameter chunk, `3M + K + 3`.
    pub fn write_chunk(&self) -> usize {
        3 * self.memory_width + self.shifts() + 3
    }

    /// `P`: head parameters per step.
    pub fn head_params(&self) -> usize {
        self.read_heads * self.read_chunk() + self.write_heads * self.write_chunk()
    }

    /// `U = I + R*M`: the controller's input size.
    pub fn controller_input(&self) -> usize {
        self.input_size + self.read_heads * self.memory_width
    }

    /// `C + R*M`: the output layer's input size.
    pub fn output_input(&self) -> usize {
        self.controller_size + self.read_heads * self.memory_width
    }

    /// All heads, `R + W`.
    pub fn heads(&self) -> usize {
        self.read_heads + self.write_heads
    }

    /// Checks the sizes. Errors: a zero size (write heads may be 0), too
    /// many heads, a shift range of `N` or more, a non-finite constant
    /// memory, or a parameter count past 2^32.
    pub fn validate(&self) -> Result<()> {
        let sizes = [
            (self.input_size, "input_size"),
            (self.output_size, "output_size"),
            (self.controller_size, "controller_size"),
            (self.memory_rows, "memory_rows"),
            (self.memory_width, "memory_width"),
            (self.read_heads, "read_heads"),
        ];
        for (v, what) in sizes {
            if v == 0 {
                return Err(Error::ZeroSize { what });
            }
            if v > MAX_PARAMETERS {
                return Err(Error::Config(format!("{what} = {v} is too large")));
            }
        }
        if self.read_heads > MAX_HEADS || self.write_heads > MAX_HEADS {
            return Err(Error::Config(format!(
                "at most {MAX_HEADS} read and {MAX_HEADS} write heads, got {} and {}",
                self.read_heads, self.write_heads
            )));
        }
        if self.shift_range >= self.memory_rows {
            return Err(Error::Config(format!(
                "shift_range {} must be below memory_rows {}",
                self.shift_range, self.memory_rows
            )));
        }
        if let MemoryInit::Constant(v) = self.memory
            && !v.is_finite()
        {
            return Err(Error::Config(format!("memory_init {v} is not finite")));
        }
        let total = self
            .layout_checked()
            .ok_or_else(|| Error::Config("the parameter count overflows".into()))?;
        if total > MAX_PARAMETERS {
            return Err(Error::Config(format!(
                "{total} parameters is more than the limit of {MAX_PARAMETERS}"
            )));
        }
        Ok(())
    }

    fn layout_checked(&self) -> Option<usize> {
        self.layout().iter().try_fold(0usize, |acc, (_, shape)| {
            let n = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d))?;
            acc.checked_add(n)
        })
    }

    /// The number of parameters.
    pub fn num_parameters(&self) -> usize {
        self.layout_checked().unwrap_or(usize::MAX)
    }

    /// The parameters' names and shapes, in buffer order (docs/ntm.md).
    pub fn layout(&self) -> Vec<(String, Vec<usize>)> {
        let c = self.controller_size;
        let u = self.controller_input();
        let mut out: Vec<(String, Vec<usize>)> = Vec::new();
        let mut push = |name: &str, shape: Vec<usize>| out.push((name.to_string(), shape));
        match self.controller {
            Controller::Lstm => {
                push("controller.weight_ih", vec![4 * c, u]);
                push("controller.weight_hh", vec![4 * c, c]);
                push("controller.bias_ih", vec![4 * c]);
                push("controller.bias_hh", vec![4 * c]);
            }
            Controller::FeedForward => {
                push("controller.weight", vec![c, u]);
                push("controller.bias", vec![c]);
            }
        }
        push("heads.weight", vec![self.head_params(), c]);
        push("heads.bias", vec![self.head_params()]);
        push("output.weight", vec![self.output_size, self.output_input()]);
        push("output.bias", vec![self.output_size]);
        push("init.read", vec![self.read_heads, self.memory_width]);
        push("init.weight_logits", vec![self.heads(), self.memory_rows]);
        if self.controller == Controller::Lstm {
            push("init.h", vec![c]);
            push("init.c", vec![c]);
        }
        if self.memory == MemoryInit::Learned {
            push("init.memory", vec![self.memory_rows, self.memory_width]);
        }
        out
    }

    /// The configuration as safetensors metadata (the keys of docs/ntm.md).
    pub fn metadata(&self) -> HashMap<String, String> {
        let (memory, init) = match self.memory {
            MemoryInit::Constant(v) => ("constant", v.to_string()),
            MemoryInit::Learned => ("learned", "0".to_string()),
        };
        [
            ("model", "ntm".to_string()),
            ("controller", self.controller.name().to_string()),
            ("input_size", self.input_size.to_string()),
            ("output_size", self.output_size.to_string()),
            ("controller_size", self.controller_size.to_string()),
            ("memory_rows", self.memory_rows.to_string()),
            ("memory_width", self.memory_width.to_string()),
            ("read_heads", self.read_heads.to_string()),
            ("write_heads", self.write_heads.to_string()),
            ("shift_range", self.shift_range.to_string()),
            ("memory", memory.to_string()),
            ("memory_init", init),
            ("seed", self.seed.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// Reads [`NtmConfig::metadata`] back (`seed` optional, but a number
    /// when present, as for networks). Errors: a
    /// missing or unparsable key, named, or an invalid configuration.
    pub fn from_metadata(get: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let text = |k: &str| get(k).ok_or_else(|| Error::Config(format!("metadata lacks {k}")));
        let num = |k: &str| -> Result<usize> {
            let v = text(k)?;
            v.parse()
                .map_err(|_| Error::Config(format!("metadata {k} = {v:?} is not a size")))
        };
        let memory = match text("memory")?.as_str() {
            "constant" => {
                let v = text("memory_init")?;
                MemoryInit::Constant(v.parse().map_err(|_| {
                    Error::Config(format!("metadata memory_init = {v:?} is not a number"))
                })?)
            }
            "learned" => MemoryInit::Learned,
            other => {
                return Err(Error::Config(format!(
                    "metadata memory = {other:?} (constant or learned)"
                )));
            }
        };
        let config = Self {
            controller: Controller::from_name(&text("controller")?)?,
            input_size: num("input_size")?,
            output_size: num("output_size")?,
            controller_size: num("controller_size")?,
            memory_rows: num("memory_rows")?,
            memory_width: num("memory_width")?,
            read_heads: num("read_heads")?,
            write_heads: num("write_heads")?,
            shift_range: num("shift_range")?,
            memory,
            seed: match get("seed") {
                Some(v) => v.trim().parse().map_err(|_| {
                    Error::Config(format!(
                        "metadata seed = {v:?} is not a non-negative integer"
                    ))
                })?,
                None => 0,
            },
        };
        config.validate()?;
        Ok(config)
    }
}
