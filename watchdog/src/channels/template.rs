//! Subject and body templates (minijinja), per channel, with defaults per
//! kind that read well on a phone and in a mail client. Templates are
//! compiled when the channel is built, so a broken template is a
//! configuration error, not a lost page.

use minijinja::{AutoEscape, Environment, UndefinedBehavior, syntax::SyntaxConfig, value::Serde};
use serde::Serialize;

use super::{
    config::TemplateSettings,
    notification::{Message, Notification},
};

/// The default one-line subject: marks tests, names status, severity,
/// target, who acknowledged (acknowledgements), and the size of a digest.
pub const DEFAULT_SUBJECT: &str = "{% if test %}[TEST] {% endif %}[{{ status|upper }}] \
{{ severity }} {{ target }}: {{ summary }}\
{% if labels.acked_by %} (acknowledged by {{ labels.acked_by }}){% endif %}\
{% if more %} (and {{ more }} more incident{{ 's' if more > 1 }}){% endif %}";

/// The default plain-text body.
pub const DEFAULT_BODY: &str = "\
{% if test %}THIS IS A TEST MESSAGE from `hyperwatch notify test`; no action is needed.

{% endif %}{% if note %}{{ note }}

{% endif %}{{ status|upper }} ({{ severity }}): {{ target }}
{{ summary }}

Incident:  {{ incident_id }}
Policy:    {{ policy }}
Level:     {{ level }}{% if repeat %} (repeat {{ repeat }}){% endif %}
Fired at:  {{ fired_at }}
{% for k, v in labels|items %}{{ k }}: {{ v }}
{% endfor %}{% if more %}
And {{ more }} more incident{{ 's' if more > 1 }}:
{% for o in others %}  - [{{ o.status|upper }}] {{ o.severity }} {{ o.target }}: {{ o.summary }} ({{ o.incident_id }})
{% endfor %}{% endif %}
Idempotency key: {{ key }}
";

/// The default HTML body (auto-escaped).
pub const DEFAULT_HTML: &str = "\
<html><body style=\"font-family: sans-serif\">
{% if test %}<p><strong>THIS IS A TEST MESSAGE</strong> from <code>hyperwatch notify test</code>; no action is needed.</p>
{% endif %}{% if note %}<p><em>{{ note }}</em></p>
{% endif %}<h2>{{ status|upper }} ({{ severity }}): {{ target }}</h2>
<p>{{ summary }}</p>
<table>
<tr><th align=\"left\">Incident</th><td>{{ incident_id }}</td></tr>
<tr><th align=\"left\">Policy</th><td>{{ policy }}</td></tr>
<tr><th align=\"left\">Level</th><td>{{ level }}{% if repeat %} (repeat {{ repeat }}){% endif %}</td></tr>
<tr><th align=\"left\">Fired at</th><td>{{ fired_at }}</td></tr>
{% for k, v in labels|items %}<tr><th align=\"left\">{{ k }}</th><td>{{ v }}</td></tr>
{% endfor %}</table>
{% if more %}<p>And {{ more }} more incident{{ 's' if more > 1 }}:</p>
<ul>
{% for o in others %}<li>[{{ o.status|upper }}] {{ o.severity }} {{ o.target }}: {{ o.summary }} ({{ o.incident_id }})</li>
{% endfor %}</ul>
{% endif %}<p style=\"color: gray\">Idempotency key: {{ key }}</p>
</body></html>
";

/// The default SMS text: short, the most important first.
pub const DEFAULT_SMS: &str = "{% if test %}[TEST] {% endif %}{{ status|upper }} {{ severity }} \
{{ target }}: {{ summary }}{% if labels.acked_by %}, acked by {{ labels.acked_by }}{% endif %} ({{ incident_id }}){% if more %} +{{ more }} more{% endif %}";

/// One channel's compiled templates.
#[derive(Debug)]
pub struct Templates {
    env: Environment<'static>,
    channel: String,
}

/// Which of a channel's templates to render.
#[derive(Clone, Copy, Debug)]
pub enum Part {
    /// The one-line subject.
    Subject,
    /// The plain-text body.
    Body,
    /// The HTML body.
    Html,
}

impl Part {
    fn name(self) -> &'static str {
        match self {
            Part::Subject => "subject.txt",
            Part::Body => "body.txt",
            Part::Html => "body.html",
        }
    }
}

/// A template that does not compile or render.
#[derive(Debug, thiserror::Error)]
#[error("template {part} of channel {channel:?}: {source:#}")]
pub struct TemplateError {
    /// The channel whose template failed.
    pub channel: String,
    /// Which template (subject.txt, body.txt, body.html).
    pub part: &'static str,
    /// What minijinja said, with the line.
    #[source]
    pub source: minijinja::Error,
}

impl Templates {
    /// Compiles a channel's templates: the operator's where given, else
    /// `default_body` for the body and the shared defaults for the rest.
    pub fn new(
        channel: &str,
        settings: &TemplateSettings,
        default_body: &'static str,
    ) -> Result<Self, TemplateError> {
        let mut env = Environment::new();
        // A missing label renders empty rather than failing a page.
        env.set_undefined_behavior(UndefinedBehavior::Lenient);
        env.set_auto_escape_callback(|name| {
            if name.ends_with(".html") {
                AutoEscape::Html
            } else {
                AutoEscape::None
            }
        });
        // A body ends with its newline, as written.
        env.set_syntax(
            SyntaxConfig::builder()
                .keep_trailing_newline(true)
                .build()
                .expect("the default syntax with trailing newlines is valid"),
        );
        let parts = [
            (Part::Subject, settings.subject.as_deref(), DEFAULT_SUBJECT),
            (Part::Body, settings.body.as_deref(), default_body),
            (Part::Html, settings.html.as_deref(), DEFAULT_HTML),
        ];
        for (part, custom, default) in parts {
            let source = custom
                .map(str::to_owned)
                .unwrap_or_else(|| default.to_owned());
            env.add_template_owned(part.name(), source)
                .map_err(|source| TemplateError {
                    channel: channel.to_owned(),
                    part: part.name(),
                    source,
                })?;
        }
        Ok(Self {
            env,
            channel: channel.to_owned(),
        })
    }

    /// Renders one part for a message.
    pub fn render(&self, part: Part, message: &Message) -> Result<String, TemplateError> {
        let err = |source| TemplateError {
            channel: self.channel.clone(),
            part: part.name(),
            source,
        };
        let template = self.env.get_template(part.name()).map_err(err)?;
        let text = template
            .render(Serde(Context::new(message, &self.channel)))
            .map_err(err)?;
        Ok(match part {
            // A subject is one line whatever the template produced.
            Part::Subject => text.split_whitespace().collect::<Vec<_>>().join(" "),
            Part::Body | Part::Html => text,
        })
    }
}

/// What templates see.
#[derive(Serialize)]
struct Context<'a> {
    #[serde(flatten)]
    notification: Readable<'a>,
    key: &'a str,
    test: bool,
    more: usize,
    others: Vec<Readable<'a>>,
    note: Option<&'a str>,
    channel: &'a str,
}

/// A notification with its times as readable text.
#[derive(Serialize)]
struct Readable<'a> {
    #[serde(flatten)]
    n: &'a Notification,
    fired_at: String,
    decided_at: String,
}

impl<'a> Readable<'a> {
    fn new(n: &'a Notification) -> Self {
        Self {
            n,
            fired_at: humantime::format_rfc3339_seconds(n.fired_at).to_string(),
            decided_at: humantime::format_rfc3339_seconds(n.decided_at).to_string(),
        }
    }
}

impl<'a> Context<'a> {
    fn new(m: &'a Message, channel: &'a str) -> Self {
        Self {
            notification: Readable::new(&m.notification),
            key: &m.key,
            test: m.test,
            more: m.others.len(),
            others: m.others.iter().map(Readable::new).collect(),
            note: m.note.as_deref(),
            channel,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channels::notification::tests::sample;

    fn defaults() -> Templates {
        Templates::new("mail", &TemplateSettings::default(), DEFAULT_BODY).unwrap()
    }

    #[test]
    fn default_subject_names_status_severity_target() {
        let m = Message::single(sample("inc-1"), "");
        let s = defaults().render(Part::Subject, &m).unwrap();
        assert_eq!(
            s,
            "[PROBLEM] critical host hv-12: heartbeats stopped 45 s ago"
        );
    }

    #[test]
    fn an_acknowledgement_names_who_acknowledged() {
        let mut n = sample("inc-1");
        n.status = crate::channels::Status::Acknowledgement;
        n.labels.insert("acked_by".into(), "alice".into());
        let m = Message::single(n, "");
        let s = defaults().render(Part::Subject, &m).unwrap();
        assert_eq!(
            s,
            "[ACKNOWLEDGEMENT] critical host hv-12: heartbeats stopped 45 s ago (acknowledged by alice)"
        );
    }

    #[test]
    fn digest_and_test_marks_show() {
        let mut m = Message::single(sample("inc-1"), "");
        m.test = true;
        m.others = (2..=38).map(|i| sample(&format!("inc-{i}"))).collect();
        let t = defaults();
        let s = t.render(Part::Subject, &m).unwrap();
        assert!(s.starts_with("[TEST] [PROBLEM]"), "{s}");
        assert!(s.ends_with("(and 37 more incidents)"), "{s}");
        let body = t.render(Part::Body, &m).unwrap();
        assert!(body.contains("THIS IS A TEST MESSAGE"), "{body}");
        assert!(body.contains("And 37 more incidents:"), "{body}");
        assert!(body.contains("(inc-38)"), "{body}");
        assert!(body.contains("rack: r7"), "{body}");
        assert!(body.contains("Fired at:  2023-11-14T22:13:20Z"), "{body}");
    }

    #[test]
    fn html_is_escaped_text_is_not() {
        let mut n = sample("inc-1");
        n.summary = "<script>x</script> & more".to_owned();
        let m = Message::single(n, "");
        let t = defaults();
        assert!(t.render(Part::Html, &m).unwrap().contains("&lt;script&gt;"));
        assert!(
            t.render(Part::Body, &m)
                .unwrap()
                .contains("<script>x</script> & more")
        );
    }

    #[test]
    fn operator_template_wins_and_broken_one_names_channel() {
        let custom = TemplateSettings {
            subject: Some("{{ labels.rack }}/{{ target }}".to_owned()),
            ..Default::default()
        };
        let t = Templates::new("pager", &custom, DEFAULT_SMS).unwrap();
        let m = Message::single(sample("inc-1"), "");
        assert_eq!(t.render(Part::Subject, &m).unwrap(), "r7/host hv-12");

        let broken = TemplateSettings {
            body: Some("{% if %}".to_owned()),
            ..Default::default()
        };
        let err = Templates::new("pager", &broken, DEFAULT_SMS).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("body.txt") && text.contains("\"pager\""),
            "{text}"
        );
    }
}
