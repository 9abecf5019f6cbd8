//! Reading presence frames without building them.
//!
//! In the `lobby` workload every client receives the whole online list (hundreds of
//! kilobytes of `presence.snapshot`) plus every later change: gigabytes of JSON in a run, on
//! the generator's one core. Only two things in each entry matter to the check — the user's
//! id and whether the status is `offline` — so [`scan`] walks the frame once, hands those two
//! to the caller as it meets them and skips the rest of each entry (nickname, capabilities,
//! themes) in one pass that only tells strings from brackets, without allocating. A frame
//! cut short, or an entry without its id or status, is an error, never a silently skipped
//! entry.

/// Which presence frame was scanned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `presence.snapshot`: its `users` were passed on.
    Snapshot,
    /// `presence.update`: its one user was passed on.
    Update,
    /// `presence.batch`: its `updates` were passed on.
    Batch,
    /// Any other frame (nothing was passed on).
    Other,
}

/// Scans one server frame; calls `apply(user_id, online)` for every presence entry it
/// holds, in order (`online` is false for the status `offline`).
///
/// The server writes `type` first (docs/protocol.md's examples; serde puts the tag first),
/// and the scan relies on it to know what the entries mean before meeting them: a frame
/// whose first key is not `type` is an error.
pub fn scan(text: &str, mut apply: impl FnMut(i64, bool)) -> Result<Kind, String> {
    let mut c = Cursor {
        b: text.as_bytes(),
        i: 0,
    };
    c.eat(b'{')?;
    if c.string()? != b"type" {
        return Err(c.fail("the first key is not \"type\""));
    }
    c.eat(b':')?;
    let kind = match c.string()? {
        b"presence.snapshot" => Kind::Snapshot,
        b"presence.update" => Kind::Update,
        b"presence.batch" => Kind::Batch,
        _ => return Ok(Kind::Other),
    };
    let mut single = Entry::default();
    while c.more(b'}')? {
        let key = c.string()?;
        c.eat(b':')?;
        match (kind, key) {
            (Kind::Snapshot, b"users") | (Kind::Batch, b"updates") => c.array(|c| {
                let (id, online) = Entry::read(c)?;
                apply(id, online);
                Ok(())
            })?,
            (Kind::Update, _) => single.field(&mut c, key)?,
            _ => c.skip()?,
        }
    }
    if kind == Kind::Update {
        let (id, online) = single.done(&c)?;
        apply(id, online);
    }
    Ok(kind)
}

/// The two fields of a presence entry that matter, as they are met.
#[derive(Default)]
struct Entry {
    id: Option<i64>,
    online: Option<bool>,
}

impl Entry {
    /// Reads one entry object: its fields up to the id and the status, then the rest of it
    /// skipped in one pass (nickname, capabilities and themes are most of its bytes).
    fn read(c: &mut Cursor<'_>) -> Result<(i64, bool), String> {
        let mut entry = Entry::default();
        c.eat(b'{')?;
        if c.peek()? == b'}' {
            c.i += 1;
        } else {
            loop {
                let key = c.string()?;
                c.eat(b':')?;
                entry.field(c, key)?;
                if entry.id.is_some() && entry.online.is_some() {
                    c.skip_nested()?;
                    break;
                }
                if !c.more(b'}')? {
                    break;
                }
            }
        }
        entry.done(c)
    }

    /// Reads the value of `key` (the cursor is after its colon).
    fn field(&mut self, c: &mut Cursor<'_>, key: &[u8]) -> Result<(), String> {
        match key {
            // `id` in snapshots, `user_id` in updates and batches.
            b"id" | b"user_id" => self.id = Some(c.int()?),
            b"status" => self.online = Some(c.string()? != b"offline"),
            _ => c.skip()?,
        }
        Ok(())
    }

    fn done(&self, c: &Cursor<'_>) -> Result<(i64, bool), String> {
        match (self.id, self.online) {
            (Some(id), Some(online)) => Ok((id, online)),
            _ => Err(c.fail("a presence entry without its id or status")),
        }
    }
}

/// A position in a frame's bytes.
struct Cursor<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Cursor<'a> {
    fn fail(&self, what: &str) -> String {
        format!("{what} at byte {}", self.i)
    }

    /// The next byte that is not whitespace (not consumed).
    #[inline]
    fn peek(&mut self) -> Result<u8, String> {
        while let Some(&byte) = self.b.get(self.i) {
            if !byte.is_ascii_whitespace() {
                return Ok(byte);
            }
            self.i += 1;
        }
        Err(self.fail("unexpected end"))
    }

    #[inline]
    fn eat(&mut self, want: u8) -> Result<(), String> {
        if self.peek()? == want {
            self.i += 1;
            Ok(())
        } else {
            Err(self.fail(&format!("expected '{}'", char::from(want))))
        }
    }

    /// In an object or array whose opening was read: whether another member follows (its
    /// separating comma consumed) or `close` ended it (consumed).
    fn more(&mut self, close: u8) -> Result<bool, String> {
        match self.peek()? {
            byte if byte == close => {
                self.i += 1;
                Ok(false)
            }
            b',' => {
                self.i += 1;
                Ok(true)
            }
            _ => Err(self.fail("expected ',' or the end of a list")),
        }
    }

    /// A string's raw bytes between its quotes (escapes left as they are: keys and statuses
    /// never hold any).
    #[inline]
    fn string(&mut self) -> Result<&'a [u8], String> {
        self.eat(b'"')?;
        let start = self.i;
        self.rest_of_string()?;
        Ok(&self.b[start..self.i - 1])
    }

    /// Moves past the closing quote of a string whose opening quote was read.
    #[inline]
    fn rest_of_string(&mut self) -> Result<(), String> {
        loop {
            let rest = self.b.get(self.i..).unwrap_or_default();
            match rest.iter().position(|&b| b == b'"' || b == b'\\') {
                Some(at) if rest[at] == b'"' => {
                    self.i += at + 1;
                    return Ok(());
                }
                // An escape: the next byte is part of it, whatever it is.
                Some(at) => self.i += at + 2,
                None => return Err(self.fail("unterminated string")),
            }
        }
    }

    /// Moves past the end of the list or object whose opening was read (and whatever is
    /// nested in it), in one pass that only tells strings from structure.
    fn skip_nested(&mut self) -> Result<(), String> {
        let mut depth = 1u32;
        while let Some(&byte) = self.b.get(self.i) {
            self.i += 1;
            match byte {
                b'"' => self.rest_of_string()?,
                b'[' | b'{' => depth += 1,
                b']' | b'}' => {
                    depth -= 1;
                    if depth == 0 {
                        return Ok(());
                    }
                }
                _ => {}
            }
        }
        Err(self.fail("unexpected end"))
    }

    fn int(&mut self) -> Result<i64, String> {
        self.peek()?;
        let start = self.i;
        if self.b.get(self.i) == Some(&b'-') {
            self.i += 1;
        }
        while self.b.get(self.i).is_some_and(u8::is_ascii_digit) {
            self.i += 1;
        }
        std::str::from_utf8(&self.b[start..self.i])
            .ok()
            .and_then(|digits| digits.parse().ok())
            .ok_or_else(|| self.fail("expected an integer"))
    }

    /// An array; `item` reads each element.
    fn array(
        &mut self,
        mut item: impl FnMut(&mut Self) -> Result<(), String>,
    ) -> Result<(), String> {
        self.eat(b'[')?;
        if self.peek()? == b']' {
            self.i += 1;
            return Ok(());
        }
        loop {
            item(self)?;
            if !self.more(b']')? {
                return Ok(());
            }
        }
    }

    /// Any value, not looked into.
    fn skip(&mut self) -> Result<(), String> {
        match self.peek()? {
            b'"' => self.string().map(drop),
            b'{' | b'[' => {
                self.i += 1;
                self.skip_nested()
            }
            _ => {
                // A number, true, false or null: up to the next delimiter.
                let start = self.i;
                while self
                    .b
                    .get(self.i)
                    .is_some_and(|b| !matches!(b, b',' | b'}' | b']') && !b.is_ascii_whitespace())
                {
                    self.i += 1;
                }
                if self.i == start {
                    return Err(self.fail("expected a value"));
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(text: &str) -> (Kind, Vec<(i64, bool)>) {
        let mut seen = Vec::new();
        let kind = scan(text, |id, online| seen.push((id, online))).expect(text);
        (kind, seen)
    }

    #[test]
    fn a_snapshot_gives_every_user_and_skips_the_rest() {
        let text = r#"{"type":"presence.snapshot","users":[{"id":7,"nickname":"a\"}]","status":"online","capabilities":["video","audio","text"],"themes":["Jogos"]},{"id":9,"nickname":"b","status":"in_call","capabilities":[],"themes":[]}]}"#;
        assert_eq!(entries(text), (Kind::Snapshot, vec![(7, true), (9, true)]));
        let empty = r#"{"type":"presence.snapshot","users":[]}"#;
        assert_eq!(entries(empty), (Kind::Snapshot, vec![]));
    }

    #[test]
    fn updates_and_batches_give_their_users_with_offline_as_false() {
        let update = r#"{"type":"presence.update","user_id":3,"status":"offline","nickname":"c","capabilities":["text"],"themes":["A","B"]}"#;
        assert_eq!(entries(update), (Kind::Update, vec![(3, false)]));
        let batch = r#"{"type":"presence.batch","updates":[{"user_id":3,"status":"busy","nickname":"c}]\\","capabilities":[],"themes":[["{"]]},{"user_id":4,"status":"offline","nickname":"d","capabilities":[],"themes":[]}]}"#;
        assert_eq!(entries(batch), (Kind::Batch, vec![(3, true), (4, false)]));
    }

    #[test]
    fn other_frames_give_nothing() {
        let text = r#"{"type":"chat.message","room":"r","users":[{"id":1,"status":"online"}]}"#;
        assert_eq!(entries(text), (Kind::Other, vec![]));
    }

    #[test]
    fn malformed_frames_are_errors_not_skipped_entries() {
        for text in [
            r#"{"type":"presence.batch","updates":[{"user_id":3,"nickname":"c"}]}"#,
            r#"{"type":"presence.batch","updates":[{"user_id":3,"status":"online"}"#,
            r#"{"type":"presence.snapshot","users":[{"id":"x","status":"online"}]}"#,
            r#"{"users":[],"type":"presence.snapshot"}"#,
            r#"{"type":"presence.update","user_id":3,"status":"online""#,
            r#"{"type":"presence.batch","updates":[{"user_id":3,"status":"online","themes":["]}"#,
        ] {
            assert!(scan(text, |_, _| {}).is_err(), "{text}");
        }
    }
}
