//! The few HTML pages a person reaches from a link before any console exists: the invitation
//! e-mail's accept link (`{public_url}/invitations/{id}`) explains how to accept with the API.
//! The page looks nothing up, so a link reveals nothing beyond what its holder already has.

use poem::http::{StatusCode, header};
use poem::web::{Data, Path};
use poem::{Response, handler};
use uuid::Uuid;

use crate::api::problem::ApiError;
use crate::state::AppState;

/// `GET /invitations/{id}`: how the invitee accepts (or declines) invitation `id`.
#[handler]
pub fn invitation(Path(id): Path<String>, state: Data<&AppState>) -> poem::Result<Response> {
    // Only a well-formed id gets a page; it is then safe to write into HTML as it is.
    let id = Uuid::parse_str(&id).map_err(|_| ApiError::not_found("invitation"))?;
    let base = &state.public_url;
    let body = format!(
        r#"<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Canopy invitation</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{{font-family:system-ui,sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem;line-height:1.5}}pre{{background:#f4f4f4;padding:.75rem;overflow-x:auto}}</style>
</head>
<body>
<h1>You have been invited to a Canopy organization</h1>
<p>Invitation <code>{id}</code>. It is accepted from an account registered with the e-mail
address it was sent to, before it expires (48 hours after it was sent).</p>
<ol>
<li>Sign up with that address (or log in if you already have an account):
<pre>curl -s {base}/v1/auth/signup -H 'content-type: application/json' \
  -d '{{"email":"you@example.com","name":"Your Name","password":"at least twelve characters"}}'</pre>
The answer's <code>token</code> is your session.</li>
<li>See your pending invitations:
<pre>curl -s {base}/v1/me/invitations -H "authorization: Bearer $TOKEN"</pre></li>
<li>Accept this one (or decline it with <code>/reject</code>):
<pre>curl -s -X POST {base}/v1/invitations/{id}/accept -H "authorization: Bearer $TOKEN"</pre></li>
</ol>
<p>The API reference is at <a href="{base}/docs">{base}/docs</a>.</p>
</body>
</html>
"#,
        base = html_escape(base),
    );
    Ok(Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/html; charset=utf-8")
        .header(header::CACHE_CONTROL, "no-store")
        .body(body))
}

/// Escapes the characters HTML gives meaning to (the public URL is operator-configured).
fn html_escape(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::html_escape;

    #[test]
    fn markup_in_the_public_url_is_escaped() {
        assert_eq!(
            html_escape("http://x/<script>\"'&"),
            "http://x/&lt;script&gt;&quot;&#39;&amp;"
        );
    }
}
