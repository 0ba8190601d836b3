//! Finds the elements of a JSON array in a byte stream without parsing them, so arrow-json can
//! decode them straight into columns. Only brackets, braces, strings and escapes are tracked.

use super::DecodeError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    Before,
    Inside,
    After,
}

/// Streaming state: feed chunks in order; element bytes come out in order, possibly split
/// across chunks, each element followed by a newline.
#[derive(Debug)]
pub struct ArraySplitter {
    place: Place,
    depth: u32,
    in_string: bool,
    escaped: bool,
    in_element: bool,
    /// Elements started so far (1-based index of the current one).
    pub elements: u64,
    /// Bytes consumed before the current chunk.
    pub offset: u64,
}

impl Default for ArraySplitter {
    fn default() -> Self {
        ArraySplitter { place: Place::Before, depth: 0, in_string: false, escaped: false, in_element: false, elements: 0, offset: 0 }
    }
}

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\n' | b'\r' | b'\t')
}

impl ArraySplitter {
    /// Feeds one chunk; `out` receives element bytes (and `\n` separators).
    pub fn feed<'a>(
        &mut self,
        chunk: &'a [u8],
        out: &mut dyn FnMut(&'a [u8]) -> Result<(), DecodeError>,
    ) -> Result<(), DecodeError> {
        let mut run_start = if self.in_element { Some(0) } else { None };
        for (i, &b) in chunk.iter().enumerate() {
            match self.place {
                Place::Before if is_ws(b) || (b == 0xEF || b == 0xBB || b == 0xBF) && self.offset + (i as u64) < 3 => {}
                Place::Before if b == b'[' => self.place = Place::Inside,
                Place::Before => return Err(self.malformed(i, format!("expected '[' but found {:?}", b as char))),
                Place::After if is_ws(b) => {}
                Place::After => return Err(self.malformed(i, "unexpected data after the closing ']'".into())),
                Place::Inside if self.in_string => {
                    if self.escaped {
                        self.escaped = false;
                    } else if b == b'\\' {
                        self.escaped = true;
                    } else if b == b'"' {
                        self.in_string = false;
                    }
                }
                Place::Inside if self.depth > 0 => match b {
                    b'"' => self.in_string = true,
                    b'{' | b'[' => self.depth += 1,
                    b'}' | b']' => {
                        self.depth -= 1;
                        if self.depth == 0 {
                            self.in_element = false;
                            out(&chunk[run_start.take().unwrap_or(0)..=i])?;
                            out(b"\n")?;
                        }
                    }
                    _ => {}
                },
                Place::Inside => match b {
                    b',' | b']' if !self.in_element && b == b',' && self.elements == 0 => {
                        return Err(self.malformed(i, "',' before the first element".into()));
                    }
                    b',' | b']' => {
                        if let Some(start) = run_start.take() {
                            out(&chunk[start..i])?;
                            out(b"\n")?;
                        }
                        self.in_element = false;
                        if b == b']' {
                            self.place = Place::After;
                        }
                    }
                    _ if is_ws(b) => {
                        if let Some(start) = run_start.take() {
                            out(&chunk[start..i])?;
                            out(b"\n")?;
                            self.in_element = false;
                        }
                    }
                    _ => {
                        if !self.in_element {
                            self.in_element = true;
                            self.elements += 1;
                            run_start = Some(i);
                        }
                        match b {
                            b'{' | b'[' => self.depth = 1,
                            b'"' => self.in_string = true,
                            _ => {}
                        }
                    }
                },
            }
        }
        if let Some(start) = run_start
            && self.in_element
        {
            out(&chunk[start..])?;
        }
        self.offset += chunk.len() as u64;
        Ok(())
    }

    /// Call after the last chunk: the array must have been closed.
    pub fn finish(&self) -> Result<(), DecodeError> {
        match self.place {
            Place::After => Ok(()),
            Place::Before if self.offset == 0 => Ok(()),
            _ => Err(DecodeError::malformed(
                format!("the JSON array is not closed (input ends inside record {})", self.elements.max(1)),
                Some(super::Position { record: Some(self.elements.max(1)), line: None, byte: Some(self.offset) }),
            )),
        }
    }

    fn malformed(&self, i: usize, message: String) -> DecodeError {
        DecodeError::malformed(
            message,
            Some(super::Position { record: Some(self.elements), line: None, byte: Some(self.offset + i as u64) }),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(chunks: &[&[u8]]) -> Result<(String, u64), DecodeError> {
        let mut splitter = ArraySplitter::default();
        let mut out = Vec::new();
        for chunk in chunks {
            splitter.feed(chunk, &mut |bytes| {
                out.extend_from_slice(bytes);
                Ok(())
            })?;
        }
        splitter.finish()?;
        Ok((String::from_utf8(out).unwrap(), splitter.elements))
    }

    #[test]
    fn elements_come_out_one_per_line_whatever_the_chunking() {
        let text = br#" [ {"a": "x,]}", "b": [1, {"c": "\"}"}]}, {"a": 2} ,{} ] "#;
        let expected = "{\"a\": \"x,]}\", \"b\": [1, {\"c\": \"\\\"}\"}]}\n{\"a\": 2}\n{}\n";
        assert_eq!(split(&[text]).unwrap(), (expected.to_string(), 3));
        for cut in 0..text.len() {
            let (a, b) = text.split_at(cut);
            assert_eq!(split(&[a, b]).unwrap().0, expected, "cut at {cut}");
        }
    }

    #[test]
    fn empty_and_scalar_arrays() {
        assert_eq!(split(&[b"[]"]).unwrap(), (String::new(), 0));
        assert_eq!(split(&[b""]).unwrap(), (String::new(), 0));
        assert_eq!(split(&[b"[1, \"s\"]"]).unwrap(), ("1\n\"s\"\n".to_string(), 2));
    }

    #[test]
    fn truncated_and_trailing_input_is_malformed_with_a_position() {
        let err = split(&[b"[{\"a\": 1}, {\"a\""]).unwrap_err();
        assert!(err.to_string().contains("record 2"), "{err}");
        let err = split(&[b"[{}] x"]).unwrap_err();
        assert!(err.to_string().contains("byte 5"), "{err}");
        let err = split(&[b"{\"a\": 1}"]).unwrap_err();
        assert!(err.to_string().contains("expected '['"), "{err}");
    }
}
