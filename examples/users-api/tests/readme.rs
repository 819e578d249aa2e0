//! The README's walk-through, run as written: each `$ curl …` line of the block between
//! `<!-- walkthrough:start -->` and `<!-- walkthrough:end -->` is run with the real `curl`
//! against the binary in local mode (`localhost:8080` pointed at the test's port), in one
//! directory so the cookie jar carries over, and its answer is compared with the line the
//! README shows under it. Ids and times differ on every run: they are compared by form only.

mod support;

use std::process::Command;

use serde_json::Value;
use support::Service;

/// The commands of the walk-through and the answers the README shows.
fn walkthrough() -> Vec<(String, String)> {
    let readme = include_str!("../README.md");
    let start = readme
        .find("<!-- walkthrough:start -->")
        .expect("the README has a walk-through");
    let end = readme[start..]
        .find("<!-- walkthrough:end -->")
        .expect("the walk-through ends")
        + start;
    let mut steps = Vec::new();
    let mut lines = readme[start..end]
        .lines()
        .filter(|line| !line.starts_with("```") && !line.starts_with("<!--"));
    while let Some(line) = lines.next() {
        let command = line
            .strip_prefix("$ ")
            .unwrap_or_else(|| panic!("expected a `$ command` line, found {line:?}"));
        let answer = lines
            .next()
            .unwrap_or_else(|| panic!("no answer under {command:?}"));
        steps.push((command.to_owned(), answer.to_owned()));
    }
    steps
}

/// Splits a command line into words: spaces separate, single quotes group (all the README
/// uses).
fn words(command: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quoted = false;
    let mut in_word = false;
    for c in command.chars() {
        match c {
            '\'' => {
                quoted = !quoted;
                in_word = true;
            }
            ' ' if !quoted => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            _ => {
                word.push(c);
                in_word = true;
            }
        }
    }
    assert!(!quoted, "unbalanced quote in {command:?}");
    if in_word {
        words.push(word);
    }
    words
}

/// Replaces the values that differ on every run (ids, times) with their form, checked.
fn normalize(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, item) in map.iter_mut() {
                match (key.as_str(), item.as_str()) {
                    ("id", Some(id)) => {
                        let uuid = id.len() == 36 && id.split('-').count() == 5;
                        assert!(uuid, "id {id:?} is not a UUID");
                        *item = Value::from("<uuid>");
                    }
                    ("created_at" | "updated_at", Some(time)) => {
                        let rfc3339 = time.len() >= 20 && time.ends_with('Z') && time.contains('T');
                        assert!(rfc3339, "{key} {time:?} is not an RFC 3339 time");
                        *item = Value::from("<time>");
                    }
                    _ => normalize(item),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(normalize),
        _ => {}
    }
}

#[test]
fn readme_walkthrough_prints_what_the_readme_shows() {
    let steps = walkthrough();
    assert!(steps.len() >= 4, "{steps:?}");
    let curl = std::env::var("APPRUNNER_TEST_CURL").unwrap_or_else(|_| "curl".to_owned());
    let dir = tempfile::tempdir().unwrap();
    let service = Service::start(dir.path(), &[]);
    let here = format!("127.0.0.1:{}", service.port());
    let work = tempfile::tempdir().unwrap();
    for (command, shown) in &steps {
        let mut args = words(command);
        assert_eq!(args.remove(0), "curl", "{command}");
        for arg in &mut args {
            *arg = arg.replace("localhost:8080", &here);
        }
        let out = Command::new(&curl)
            .args(&args)
            .current_dir(work.path())
            .output()
            .unwrap_or_else(|e| {
                panic!("run {curl} (install curl, or set APPRUNNER_TEST_CURL): {e}")
            });
        assert!(out.status.success(), "{command}: {out:?}");
        let printed = String::from_utf8(out.stdout).unwrap();
        let mut got: Value = serde_json::from_str(&printed)
            .unwrap_or_else(|e| panic!("{command} printed {printed:?}: {e}"));
        let mut want: Value = serde_json::from_str(shown).unwrap();
        normalize(&mut got);
        normalize(&mut want);
        assert_eq!(got, want, "{command} printed\n{printed}");
    }
    drop(service);
}
