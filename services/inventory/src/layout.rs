//! The shape of what is on sale as the scripts see it: sections, the
//! event's published terms, and seats as requests name them. Encoded into
//! the meta hash by [`publish()`](crate::publish()) and decoded by
//! [`read_meta`](crate::read_meta).

/// A section as the scripts see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SectionLayout {
    pub id: i64,
    /// `Some((rows, seats_per_row))` for a seated section, `None` for general admission.
    pub seated: Option<(u32, u32)>,
    pub capacity: i64,
    pub price_cents: i64,
}

impl SectionLayout {
    pub(crate) fn encode(&self) -> String {
        match self.seated {
            Some((rows, spr)) => format!("s,{rows},{spr},{},{}", self.capacity, self.price_cents),
            None => format!("g,0,0,{},{}", self.capacity, self.price_cents),
        }
    }

    pub(crate) fn decode(id: i64, s: &str) -> Option<Self> {
        let mut it = s.split(',');
        let kind = it.next()?;
        let rows: u32 = it.next()?.parse().ok()?;
        let spr: u32 = it.next()?.parse().ok()?;
        let capacity = it.next()?.parse().ok()?;
        let price_cents = it.next()?.parse().ok()?;
        let seated = match kind {
            "s" => Some((rows, spr)),
            "g" => None,
            _ => return None,
        };
        Some(Self { id, seated, capacity, price_cents })
    }

    /// Whether `row`/`number` is a seat of this section.
    pub fn has_seat(&self, row: u32, number: u32) -> bool {
        self.seated.is_some_and(|(rows, spr)| (1..=rows).contains(&row) && (1..=spr).contains(&number))
    }
}

/// What is on sale, as published into Redis.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventMeta {
    pub sale_ms: i64,
    pub hold_ms: i64,
    pub limit: i64,
    pub waiting_room: bool,
    /// Holds need a verified e-mail (meta `ve`).
    pub verified_email_required: bool,
    pub sections: Vec<SectionLayout>,
}

impl EventMeta {
    pub fn section(&self, id: i64) -> Option<&SectionLayout> {
        self.sections.iter().find(|s| s.id == id)
    }
}

/// A seat named in a request, already parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeatRef {
    pub section: i64,
    pub row: u32,
    pub number: u32,
}

impl SeatRef {
    /// Parses `"<section>:<row>:<number>"`.
    pub fn parse(s: &str) -> Option<Self> {
        let mut it = s.split(':');
        let section = it.next()?.parse().ok()?;
        let row = it.next()?.parse().ok()?;
        let number = it.next()?.parse().ok()?;
        if it.next().is_some() || s.len() > 40 {
            return None;
        }
        Some(Self { section, row, number })
    }

    pub fn id(&self) -> String {
        format!("{}:{}:{}", self.section, self.row, self.number)
    }
}
