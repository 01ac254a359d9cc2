//! Parameters in one contiguous `f32` buffer with named views.
//!
//! A model's parameters, and its gradients (a twin [`Params`] with the same
//! layout), each live in one buffer, so optimizers, clipping, NaN checks,
//! save/load and the C API work on one slice. Each tensor is a named view
//! (PyTorch's `state_dict` names) with a shape and an offset.

use std::collections::HashMap;

use crate::alloc;
use crate::error::{Error, Result};

/// One named tensor inside a [`Params`] buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamInfo {
    /// PyTorch name, e.g. `weight_ih_l0`, `bias_hh_l1_reverse`.
    pub name: String,
    /// Shape, row-major.
    pub shape: Vec<usize>,
    /// Offset of the first element in the buffer.
    pub offset: usize,
}

impl ParamInfo {
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// Whether the tensor has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A set of named tensors in one contiguous buffer.
#[derive(Clone, Debug, PartialEq)]
pub struct Params {
    data: Vec<f32>,
    infos: Vec<ParamInfo>,
}

impl Params {
    /// A zero-filled set with the given names and shapes, in that order.
    pub fn zeros(layout: impl IntoIterator<Item = (String, Vec<usize>)>) -> Self {
        let mut offset = 0;
        let infos: Vec<ParamInfo> = layout
            .into_iter()
            .map(|(name, shape)| {
                let info = ParamInfo {
                    name,
                    shape,
                    offset,
                };
                offset += info.len();
                info
            })
            .collect();
        Self {
            data: vec![0.0; offset],
            infos,
        }
    }

    /// As [`Params::zeros`], reporting a failed allocation as an error.
    pub fn try_zeros(layout: impl IntoIterator<Item = (String, Vec<usize>)>) -> Result<Self> {
        let mut offset = 0usize;
        let mut infos = Vec::new();
        for (name, shape) in layout {
            let len = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
            let end = len.and_then(|n| offset.checked_add(n));
            let Some(end) = end else {
                return Err(Error::OutOfMemory {
                    what: format!("parameter {name}"),
                    bytes: usize::MAX,
                });
            };
            infos.push(ParamInfo {
                name,
                shape,
                offset,
            });
            offset = end;
        }
        let data = alloc::zeros(offset, "parameters")?;
        Ok(Self { data, infos })
    }

    /// A zero-filled set with the same layout as `self` (a gradient buffer).
    pub fn zeros_like(&self) -> Self {
        Self {
            data: vec![0.0; self.data.len()],
            infos: self.infos.clone(),
        }
    }

    /// As [`Params::zeros_like`], reporting a failed allocation as an error.
    pub fn try_zeros_like(&self) -> Result<Self> {
        Ok(Self {
            data: alloc::zeros(self.data.len(), "gradients")?,
            infos: self.infos.clone(),
        })
    }

    /// A copy, reporting a failed allocation as an error (`clone` aborts
    /// the process when memory runs out).
    pub fn try_clone(&self) -> Result<Self> {
        Ok(Self {
            data: alloc::copy_of(&self.data, "parameters")?,
            infos: self.infos.clone(),
        })
    }

    /// The whole buffer.
    pub fn as_slice(&self) -> &[f32] {
        &self.data
    }

    /// The whole buffer, mutable.
    pub fn as_mut_slice(&mut self) -> &mut [f32] {
        &mut self.data
    }

    /// The tensors, in buffer order.
    pub fn infos(&self) -> &[ParamInfo] {
        &self.infos
    }

    /// Number of tensors.
    pub fn len(&self) -> usize {
        self.infos.len()
    }

    /// Whether the set holds no tensors.
    pub fn is_empty(&self) -> bool {
        self.infos.is_empty()
    }

    /// A set with the given layout filled from `tensors` `(name, shape,
    /// values)`.
    ///
    /// Every tensor of the layout is checked (present, its shape, its
    /// length) before the buffer is allocated, so the allocation is never
    /// larger than the values given: a configuration that claims more than
    /// a file holds is an error, not a large allocation. A tensor that is not
    /// in the layout is ignored, unless `param_like(name)` says it is named
    /// like a parameter of this kind of model: then it is an error naming it
    /// (a parameter the configuration does not use would otherwise be
    /// dropped silently).
    ///
    /// Errors: a tensor of the layout missing ([`Error::MissingParameter`])
    /// or of another shape, a length that disagrees with its shape, a name
    /// given twice, an unused parameter-like tensor ([`Error::Unexpected`]),
    /// no memory for the buffer.
    pub fn try_from_tensors<'a>(
        layout_entries: impl IntoIterator<Item = (String, Vec<usize>)>,
        tensors: impl IntoIterator<Item = (&'a str, &'a [usize], &'a [f32])>,
        param_like: impl Fn(&str) -> bool,
    ) -> Result<Self> {
        let mut given: HashMap<&str, (&[usize], &[f32])> = HashMap::new();
        for (name, shape, values) in tensors {
            if given.insert(name, (shape, values)).is_some() {
                return Err(Error::Unexpected(format!("tensor {name} given twice")));
            }
        }
        // Each entry is checked before the next is taken: the layout held
        // is never longer than the tensors given.
        let mut layout: Vec<(String, Vec<usize>)> = Vec::new();
        for (name, want) in layout_entries {
            let Some(&(shape, values)) = given.get(name.as_str()) else {
                return Err(Error::MissingParameter { name });
            };
            if shape != want.as_slice() {
                return Err(Error::shape(name.as_str(), &want, shape));
            }
            crate::error::check_len(&name, values, shape)?;
            layout.push((name, want));
        }
        let mut unused: Vec<&str> = given
            .keys()
            .copied()
            .filter(|n| param_like(n) && !layout.iter().any(|(l, _)| l == n))
            .collect();
        if !unused.is_empty() {
            unused.sort_unstable();
            return Err(Error::Unexpected(format!(
                "tensor{} {} not used by the configuration (a parameter it does not have)",
                if unused.len() > 1 { "s" } else { "" },
                unused.join(", ")
            )));
        }
        let mut params = Self::try_zeros(layout.iter().cloned())?;
        for (name, _) in &layout {
            let (_, values) = given[name.as_str()];
            params.set(name, values)?;
        }
        Ok(params)
    }

    /// Total number of scalars.
    pub fn num_elements(&self) -> usize {
        self.data.len()
    }

    /// The info of tensor `name`.
    pub fn info(&self, name: &str) -> Option<&ParamInfo> {
        self.infos.iter().find(|i| i.name == name)
    }

    /// Tensor `name`, flat row-major.
    pub fn get(&self, name: &str) -> Option<&[f32]> {
        self.info(name)
            .map(|i| &self.data[i.offset..i.offset + i.len()])
    }

    /// Tensor `name`, flat row-major, mutable.
    pub fn get_mut(&mut self, name: &str) -> Option<&mut [f32]> {
        let (o, n) = self.info(name).map(|i| (i.offset, i.len()))?;
        Some(&mut self.data[o..o + n])
    }

    /// Copies `values` into tensor `name`.
    ///
    /// Errors: unknown name ([`Error::MissingParameter`]), wrong length
    /// ([`Error::Shape`]). Nothing is changed on error.
    pub fn set(&mut self, name: &str, values: &[f32]) -> Result<()> {
        let info = self.info(name).ok_or_else(|| Error::MissingParameter {
            name: name.to_string(),
        })?;
        if values.len() != info.len() {
            return Err(Error::shape(name, &info.shape, &[values.len()]));
        }
        let o = info.offset;
        self.data[o..o + values.len()].copy_from_slice(values);
        Ok(())
    }

    /// Iterates over `(name, shape, values)`.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[usize], &[f32])> {
        self.infos.iter().map(|i| {
            (
                i.name.as_str(),
                i.shape.as_slice(),
                &self.data[i.offset..i.offset + i.len()],
            )
        })
    }

    /// Sets every value to zero (gradient reset).
    pub fn fill_zero(&mut self) {
        self.data.fill(0.0);
    }

    /// The buffer range of tensors `first..last` (inclusive), contiguous by
    /// construction.
    pub(crate) fn range_of(&self, first: usize, last: usize) -> std::ops::Range<usize> {
        let a = &self.infos[first];
        let b = &self.infos[last];
        a.offset..b.offset + b.len()
    }
}
