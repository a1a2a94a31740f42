//! Field relocation for the hot programs: rewrites the placeholder offsets
//! of their direct tracepoint-field loads (agent_common::ctx) with the
//! offsets read from tracefs, in a copy of the eBPF object, before loading.
//!
//! Only the offset field of `LDX` (memory load) instructions in executable
//! sections changes; the object stays otherwise byte-identical.

use std::fmt;

/// One field to relocate: loads at `placeholder .. placeholder + size`
/// move to `offset .. offset + size`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FieldPatch {
    pub placeholder: i16,
    pub offset: u32,
    pub size: u32,
    /// For messages: the field and its tracepoint.
    pub field: &'static str,
    pub program: &'static str,
}

/// Why the object could not be patched.
#[derive(Debug, thiserror::Error)]
pub enum PatchError {
    #[error("the eBPF object is not a 64-bit little-endian ELF file: {0}")]
    NotElf(String),
    #[error(
        "program {program}: no load of field `{field}` (placeholder {placeholder:#x}) in the eBPF object; the object and the agent disagree (rebuild both)"
    )]
    NotFound {
        program: &'static str,
        field: &'static str,
        placeholder: i16,
    },
    #[error(
        "program {program}: field `{field}` at offset {offset} cannot be loaded {size} bytes at a time (the verifier needs aligned loads)"
    )]
    Misaligned {
        program: &'static str,
        field: &'static str,
        offset: u32,
        size: u32,
    },
}

/// An eBPF object in 8-byte aligned memory, as the ELF parser needs it.
pub struct AlignedObject {
    words: Vec<u64>,
    len: usize,
}

impl AlignedObject {
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: the Vec<u64> holds at least `len` initialised bytes.
        unsafe { std::slice::from_raw_parts(self.words.as_ptr().cast::<u8>(), self.len) }
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as above, and the borrow is exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.words.as_mut_ptr().cast::<u8>(), self.len) }
    }
}

impl fmt::Debug for AlignedObject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AlignedObject({} bytes)", self.len)
    }
}

const SHF_EXECINSTR: u64 = 0x4;
const BPF_CLASS_MASK: u8 = 0x07;
const BPF_LDX: u8 = 0x01;
const BPF_MODE_MASK: u8 = 0xe0;
const BPF_MEM: u8 = 0x60;
/// Sign-extending load (BPF ISA v4).
const BPF_MEMSX: u8 = 0x80;
const BPF_SIZE_MASK: u8 = 0x18;
/// `lddw`: a 16-byte instruction whose second half is not an instruction.
const BPF_LD_IMM64: u8 = 0x18;

/// Copies `object` and applies `patches`; every patch must hit at least one
/// load.
pub fn apply(object: &[u8], patches: &[FieldPatch]) -> Result<AlignedObject, PatchError> {
    let mut out = AlignedObject {
        words: vec![0; object.len().div_ceil(8)],
        len: object.len(),
    };
    out.bytes_mut().copy_from_slice(object);
    let mut hits = vec![0usize; patches.len()];
    for (start, end) in executable_sections(out.bytes())? {
        let code = &mut out.bytes_mut()[start..end];
        let mut i = 0;
        while i + 8 <= code.len() {
            let opcode = code[i];
            let mode = opcode & BPF_MODE_MASK;
            if opcode & BPF_CLASS_MASK == BPF_LDX && (mode == BPF_MEM || mode == BPF_MEMSX) {
                let off = i16::from_le_bytes([code[i + 2], code[i + 3]]);
                if let Some((n, p)) = patches.iter().enumerate().find(|(_, p)| {
                    off >= p.placeholder
                        && i32::from(off) < i32::from(p.placeholder) + p.size as i32
                }) {
                    let new = p.offset + (off - p.placeholder) as u32;
                    let width = load_width(opcode);
                    if !new.is_multiple_of(width) || new > i16::MAX as u32 {
                        return Err(PatchError::Misaligned {
                            program: p.program,
                            field: p.field,
                            offset: new,
                            size: width,
                        });
                    }
                    code[i + 2..i + 4].copy_from_slice(&(new as i16).to_le_bytes());
                    hits[n] += 1;
                }
            }
            i += if opcode == BPF_LD_IMM64 { 16 } else { 8 };
        }
    }
    if let Some((p, _)) = patches.iter().zip(&hits).find(|(_, h)| **h == 0) {
        return Err(PatchError::NotFound {
            program: p.program,
            field: p.field,
            placeholder: p.placeholder,
        });
    }
    Ok(out)
}

fn load_width(opcode: u8) -> u32 {
    match opcode & BPF_SIZE_MASK {
        0x00 => 4,
        0x08 => 2,
        0x10 => 1,
        _ => 8,
    }
}

/// Byte ranges of the executable sections of a 64-bit little-endian ELF.
fn executable_sections(elf: &[u8]) -> Result<Vec<(usize, usize)>, PatchError> {
    let bad = |what: &str| PatchError::NotElf(what.to_owned());
    if elf.len() < 64 || &elf[..4] != b"\x7fELF" || elf[4] != 2 || elf[5] != 1 {
        return Err(bad("bad header"));
    }
    let u16_at = |o: usize| u16::from_le_bytes([elf[o], elf[o + 1]]) as usize;
    let u64_at = |o: usize| {
        elf.get(o..o + 8)
            .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
    };
    let shoff = u64_at(0x28).ok_or_else(|| bad("no section table offset"))? as usize;
    let (shentsize, shnum) = (u16_at(0x3a), u16_at(0x3c));
    let mut sections = Vec::new();
    for n in 0..shnum {
        let h = shoff + n * shentsize;
        let flags = u64_at(h + 8).ok_or_else(|| bad("section header out of bounds"))?;
        if flags & SHF_EXECINSTR == 0 {
            continue;
        }
        let offset = u64_at(h + 24).ok_or_else(|| bad("section header out of bounds"))? as usize;
        let size = u64_at(h + 32).ok_or_else(|| bad("section header out of bounds"))? as usize;
        if offset.checked_add(size).is_none_or(|end| end > elf.len()) {
            return Err(bad("section beyond the end of the file"));
        }
        sections.push((offset, offset + size));
    }
    Ok(sections)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn patch(placeholder: i16, offset: u32, size: u32) -> FieldPatch {
        FieldPatch {
            placeholder,
            offset,
            size,
            field: "f",
            program: "p",
        }
    }

    /// A minimal ELF: header, one executable section with the given code,
    /// and its section header table.
    fn elf(code: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; 64];
        f[..6].copy_from_slice(b"\x7fELF\x02\x01");
        let code_at = f.len();
        f.extend_from_slice(code);
        let shoff = f.len();
        f[0x28..0x30].copy_from_slice(&(shoff as u64).to_le_bytes());
        f[0x3a..0x3c].copy_from_slice(&64u16.to_le_bytes());
        f[0x3c..0x3e].copy_from_slice(&2u16.to_le_bytes());
        f.extend_from_slice(&[0u8; 64]); // null section
        let mut sh = [0u8; 64];
        sh[8..16].copy_from_slice(&SHF_EXECINSTR.to_le_bytes());
        sh[24..32].copy_from_slice(&(code_at as u64).to_le_bytes());
        sh[32..40].copy_from_slice(&(code.len() as u64).to_le_bytes());
        f.extend_from_slice(&sh);
        f
    }

    fn insn(opcode: u8, off: i16) -> [u8; 8] {
        let mut i = [0u8; 8];
        i[0] = opcode;
        i[1] = 0x17; // dst r7, src r1
        i[2..4].copy_from_slice(&off.to_le_bytes());
        i
    }

    #[test]
    fn loads_in_a_field_window_move_to_the_real_offset() {
        let mut code = Vec::new();
        code.extend(insn(0x61, 0x7040)); // ldxw [r1+0x7040]
        code.extend(insn(0x71, 0x7121)); // ldxb [r1+0x7121] (rwbs[1])
        code.extend(insn(0x18, 0x7040)); // lddw: not a load; skips 16 bytes
        code.extend([0u8; 8]);
        code.extend(insn(0x79, -8)); // a stack load stays
        let object = elf(&code);
        let out = apply(&object, &[patch(0x7040, 56, 4), patch(0x7120, 34, 10)]).unwrap();
        let text = &out.bytes()[64..64 + code.len()];
        assert_eq!(i16::from_le_bytes([text[2], text[3]]), 56);
        assert_eq!(i16::from_le_bytes([text[10], text[11]]), 35);
        assert_eq!(
            i16::from_le_bytes([text[18], text[19]]),
            0x7040,
            "lddw untouched"
        );
        assert_eq!(i16::from_le_bytes([text[34], text[35]]), -8);
        assert_eq!(out.bytes().len(), object.len());
    }

    #[test]
    fn a_missing_placeholder_and_a_misaligned_offset_are_errors() {
        let object = elf(&insn(0x79, 0x7020)); // ldxdw
        let err = apply(&object, &[patch(0x7060, 8, 4)]).unwrap_err();
        assert!(
            matches!(
                err,
                PatchError::NotFound {
                    placeholder: 0x7060,
                    ..
                }
            ),
            "{err}"
        );
        let err = apply(&object, &[patch(0x7020, 36, 8)]).unwrap_err();
        assert!(
            err.to_string()
                .contains("offset 36 cannot be loaded 8 bytes at a time"),
            "{err}"
        );
        assert!(matches!(
            apply(b"not an elf", &[]),
            Err(PatchError::NotElf(_))
        ));
    }
}
