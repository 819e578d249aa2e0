//! The few keywords the summary needs.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kw {
    /// Not a keyword we care about (identifiers, most keywords).
    None,
    Select,
    /// INSERT, REPLACE, MERGE, UPSERT: an operation whose table follows (after INTO).
    Insert,
    Update,
    Delete,
    With,
    From,
    Join,
    In,
    Is,
    Not,
    Distinct,
    As,
    True,
    False,
    Call,
    /// CREATE, ALTER, DROP: the object type follows.
    Ddl,
    Truncate,
    Table,
    /// INDEX, VIEW, SEQUENCE, …: appended to a DDL operation.
    ObjectType,
    /// Words skipped between an operation and its table: INTO, ONLY, IGNORE, IF, EXISTS, …
    Filler,
    /// Keywords that end a FROM list (WHERE, ON, GROUP, …): never an alias.
    Clause,
}

pub(super) fn keyword(word: &[u8]) -> Kw {
    if word.len() > 13 {
        return Kw::None;
    }
    let mut buf = [0u8; 13];
    let upper = &mut buf[..word.len()];
    upper.copy_from_slice(word);
    upper.make_ascii_uppercase();
    match &*upper {
        b"SELECT" => Kw::Select,
        b"INSERT" | b"REPLACE" | b"MERGE" | b"UPSERT" => Kw::Insert,
        b"UPDATE" => Kw::Update,
        b"DELETE" => Kw::Delete,
        b"WITH" => Kw::With,
        b"FROM" => Kw::From,
        b"JOIN" | b"STRAIGHT_JOIN" => Kw::Join,
        b"IN" => Kw::In,
        b"IS" => Kw::Is,
        b"NOT" => Kw::Not,
        b"DISTINCT" => Kw::Distinct,
        b"AS" => Kw::As,
        b"TRUE" => Kw::True,
        b"FALSE" => Kw::False,
        b"CALL" => Kw::Call,
        b"CREATE" | b"ALTER" | b"DROP" => Kw::Ddl,
        b"TRUNCATE" => Kw::Truncate,
        b"TABLE" => Kw::Table,
        b"INDEX" | b"VIEW" | b"SEQUENCE" | b"SCHEMA" | b"DATABASE" | b"FUNCTION" | b"PROCEDURE"
        | b"TRIGGER" | b"TYPE" | b"EXTENSION" | b"ROLE" | b"USER" => Kw::ObjectType,
        b"INTO" | b"ONLY" | b"IGNORE" | b"IF" | b"EXISTS" | b"OR" | b"LOW_PRIORITY"
        | b"DELAYED" | b"HIGH_PRIORITY" | b"QUICK" | b"ABORT" | b"FAIL" | b"ROLLBACK"
        | b"LATERAL" => Kw::Filler,
        b"WHERE" | b"ON" | b"USING" | b"GROUP" | b"ORDER" | b"HAVING" | b"LIMIT" | b"OFFSET"
        | b"UNION" | b"INTERSECT" | b"EXCEPT" | b"WINDOW" | b"FOR" | b"SET" | b"VALUES"
        | b"RETURNING" | b"INNER" | b"LEFT" | b"RIGHT" | b"FULL" | b"OUTER" | b"CROSS"
        | b"NATURAL" | b"FETCH" | b"TABLESAMPLE" | b"USE" | b"FORCE" | b"PARTITION"
        | b"DEFAULT" | b"WHEN" | b"LOCK" | b"AND" | b"CASE" | b"OUTPUT" | b"DO" | b"CONFLICT"
        | b"DUPLICATE" | b"INDEXED" => Kw::Clause,
        _ => Kw::None,
    }
}
