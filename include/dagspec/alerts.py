"""Alerts (task failure and retry, monitor breaches, run success, warn checks, stale tables): the message,
secret scrubbing, and delivery by SMTP and webhook.

No Airflow here: `dagspec.airflow.alerts` turns a task callback's context into an `AlertEvent`
and calls `send_alerts`. Delivery problems are logged, never raised: an alert that cannot be
sent must not hide the task failure it reports.
"""

from __future__ import annotations

import json
import logging
import re
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from email.message import EmailMessage

from dagspec.connections import ConnectionInfo, Resolver, env_resolver
from dagspec.plan import ML_KINDS
from dagspec.secrets import MASK, extra_secrets, scrub, scrub_known  # noqa: F401  (scrub and MASK: re-exported, alerts API)
from dagspec.smtp import send_email, sender_of
from dagspec.spec.model import Alerts, Pipeline

log = logging.getLogger(__name__)

MAX_ERROR_CHARS = 600
SEND_TIMEOUT_S = 15
RUN_KINDS = frozenset(("success", "warn", "stale", "recovered"))  # alerts about a run or a table, not a task's try


@dataclass(frozen=True)
class AlertEvent:
    kind: str  # "failure", "retry", "monitor" (`error` holds its numbers), or one of RUN_KINDS (`details`)
    dag_id: str
    task_id: str  # "" for an alert about the whole run or the pipeline's tables
    run_id: str
    date: str  # the run's data interval, e.g. "2025-03-01 .. 2025-03-02", or the dates a run processed
    try_number: int
    max_tries: int
    error: str  # already summarised and scrubbed
    log_url: str
    details: tuple[str, ...] = ()  # one fact a line: published tables and rows, failed warn checks, stale tables

    @property
    def subject(self) -> str:
        where = f"{self.dag_id}.{self.task_id}" if self.task_id else self.dag_id
        if self.kind == "monitor":
            text = f"[dagspec] {where} monitor breach for {self.date}"
        elif self.kind in RUN_KINDS:
            text = f"[dagspec] {where} {RUN_VERBS[self.kind](len(self.details))} {self.date}"
        else:
            verb = "failed" if self.kind == "failure" else f"failed, will retry (try {self.try_number}/{self.max_tries + 1})"
            text = f"[dagspec] {where} {verb} for {self.date}"
        return one_line(text)


RUN_VERBS = {
    "success": lambda n: "succeeded for",
    "warn": lambda n: f"{n} warn check(s) failed for",
    "stale": lambda n: f"{n} table(s) stale at",
    "recovered": lambda n: f"{n} table(s) fresh again at",
}
RUN_HEADINGS = {"success": "Published", "warn": "Failed warn checks (the run went on)", "stale": "Stale tables",
                "recovered": "Fresh again"}
RUN_ICONS = {"success": ":large_green_circle:", "warn": ":warning:", "stale": ":hourglass:",
             "recovered": ":large_green_circle:"}
MAX_DETAILS = 50


def one_line(text: str) -> str:
    """A value from a definition (a check's column, a table name) kept on its line: a newline in it can neither
    start a mail header nor forge a line of the alert."""
    return re.sub(r"[\x00-\x1f\x7f\u2028\u2029]+", " ", text)


def detail_lines(event: AlertEvent) -> list[str]:
    lines = [one_line(d) for d in event.details[:MAX_DETAILS]]
    if len(event.details) > MAX_DETAILS:
        lines.append(f"... and {len(event.details) - MAX_DETAILS} more")
    return lines or ["(nothing)"]


def summarize_error(error: BaseException | str | None, secrets: Iterable[str | None] = ()) -> str:
    """One short paragraph: the exception type and message, cut to MAX_ERROR_CHARS, secrets removed."""
    if error is None:
        return "(no error details: see the log)"
    text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    text = scrub_known(text.strip(), secrets)
    if len(text) > MAX_ERROR_CHARS:
        text = text[: MAX_ERROR_CHARS - 1].rstrip() + "…"
    return text


def pipeline_secrets(pipeline: Pipeline, resolver: Resolver) -> list[str]:
    """Secrets of every connection the pipeline names (sources, warehouse, store, every publish target, the
    model registry, the alert channels): they must not leak into an alert."""
    conn_ids = set(_conn_ids(pipeline.model_dump(by_alias=True)))
    if any(step.kind in ML_KINDS for step in pipeline.steps):
        from dagspec.ml.registry import REGISTRY_CONN_ID

        conn_ids.add(REGISTRY_CONN_ID)
    found = []
    for conn_id in sorted(conn_ids):
        try:
            info = resolver(conn_id)
        except Exception:  # an unknown connection has no secret to hide
            continue
        found.extend(v for v in [info.password, *extra_secrets(info.extra)] if v)
    return found


def _conn_ids(node: object) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key.endswith("conn_id") and isinstance(value, str):
                yield value
            else:
                yield from _conn_ids(value)
    elif isinstance(node, list):
        for value in node:
            yield from _conn_ids(value)


def email_message(event: AlertEvent, recipients: list[str], sender: str) -> EmailMessage:
    msg = EmailMessage()
    msg["Subject"] = event.subject
    msg["From"] = sender
    msg["To"] = ", ".join(recipients)
    if event.kind in RUN_KINDS:
        task = f"Task:  {one_line(event.task_id)}\n" if event.task_id else ""
        msg.set_content(
            f"{event.subject}\n\nDAG:   {event.dag_id}\n{task}Date:  {one_line(event.date)}\n"
            f"Run:   {one_line(event.run_id)}\n\n{RUN_HEADINGS[event.kind]}:\n"
            + "".join(f"- {line}\n" for line in detail_lines(event))
            + (f"\n{_link_label(event)}: {one_line(event.log_url)}\n" if event.log_url else "")
        )
        return msg
    msg.set_content(
        f"{event.subject}\n\n"
        f"DAG:   {event.dag_id}\nTask:  {event.task_id}\nDate:  {event.date}\nRun:   {event.run_id}\n"
        f"Try:   {event.try_number} of {event.max_tries + 1}\n\n{_heading(event)}:\n{event.error}\n\n"
        f"{_link_label(event)}: {event.log_url}\n"
    )
    return msg


def slack_payload(event: AlertEvent) -> dict:
    """Slack incoming-webhook JSON (also understood by Mattermost, Rocket.Chat, Teams' Slack connector)."""
    if event.kind in RUN_KINDS:
        return _run_payload(event)
    icon = {"failure": ":red_circle:", "monitor": ":warning:"}.get(event.kind, ":large_orange_circle:")
    fields = [("DAG", event.dag_id), ("Task", event.task_id), ("Date", event.date),
              ("Try", f"{event.try_number} of {event.max_tries + 1}")]
    return {
        "text": f"{icon} {event.subject}",
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": f"{icon} *{_mrkdwn(event.subject)}*"}},
            {"type": "section", "fields": [{"type": "mrkdwn", "text": f"*{k}*\n{_mrkdwn(v)}"} for k, v in fields]},
            {"type": "section", "text": {"type": "mrkdwn", "text": "```" + _mrkdwn(event.error.replace("`", "'")) + "```"}},
            {"type": "section", "text": {"type": "mrkdwn", "text": f"<{event.log_url}|{_link_label(event)}>"}},
        ],
    }


def _run_payload(event: AlertEvent) -> dict:
    icon = RUN_ICONS[event.kind]
    fields = [("DAG", event.dag_id), *([("Task", event.task_id)] if event.task_id else []), ("Date", event.date)]
    lines = "\n".join(f"• {_mrkdwn(line)}" for line in detail_lines(event))
    blocks = [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"{icon} *{_mrkdwn(event.subject)}*"}},
        {"type": "section", "fields": [{"type": "mrkdwn", "text": f"*{k}*\n{_mrkdwn(one_line(v))}"} for k, v in fields]},
        # Slack refuses a section text over 3,000 characters.
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*{RUN_HEADINGS[event.kind]}*\n{lines}"[:2900]}},
    ]
    if event.log_url:
        blocks.append({"type": "section", "text": {"type": "mrkdwn",
                                                   "text": f"<{_mrkdwn(one_line(event.log_url))}|{_link_label(event)}>"}})
    return {"text": f"{icon} {event.subject}", "blocks": blocks}


def _heading(event: AlertEvent) -> str:
    return "Breach" if event.kind == "monitor" else "Error"


def _link_label(event: AlertEvent) -> str:
    return LINK_LABELS.get(event.kind, "Task log")


LINK_LABELS = {"monitor": "Monitor plot", "success": "Run", "warn": "Validation report", "stale": "Definitions page",
               "recovered": "Definitions page"}


def _mrkdwn(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def webhook_url(info: ConnectionInfo) -> str:
    """The URL of a webhook connection: extra.webhook_url, a URL in password or host, or scheme://host[:port]/path."""
    for candidate in (info.extra.get("webhook_url"), info.password, info.host):
        if candidate and re.match(r"^https?://", candidate):
            base = candidate
            break
    else:
        if not info.host:
            raise ValueError(f"webhook connection {info.conn_id!r} has no URL (set its host or extra.webhook_url)")
        scheme = info.conn_type if info.conn_type in ("http", "https") else "https"
        base = f"{scheme}://{info.host}{f':{info.port}' if info.port else ''}"
        if info.schema:
            base = f"{base}/{info.schema.lstrip('/')}"
    # Airflow's Slack webhook connection keeps the token part of the URL in the password.
    if info.password and base != info.password and not re.match(r"^https?://", info.password):
        base = f"{base.rstrip('/')}/{info.password.lstrip('/')}"
    return base


def post_webhook(info: ConnectionInfo, payload: dict) -> None:
    request = urllib.request.Request(
        webhook_url(info), data=json.dumps(payload).encode(), method="POST",
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=SEND_TIMEOUT_S) as resp:
            resp.read()
    except urllib.error.HTTPError as exc:
        # The URL is the webhook's secret: name the connection, never the address.
        raise RuntimeError(f"webhook connection {info.conn_id!r} answered HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise RuntimeError(f"webhook connection {info.conn_id!r} unreachable: {type(reason).__name__}") from None


def send_alerts(
    alerts: Alerts, event: AlertEvent, resolver: Resolver = env_resolver, secrets: Iterable[str] = ()
) -> dict[str, bool]:
    """Deliver one event to every configured channel; returns which channels got it."""
    secrets = list(secrets)
    delivered: dict[str, bool] = {}
    # A 'fresh again' note belongs to the stale alert it closes.
    if ("stale" if event.kind == "recovered" else event.kind) not in alerts.on:
        return delivered
    if alerts.email:
        try:
            info = resolver(alerts.smtp_conn_id)
            secrets.append(info.password or "")
            send_email(info, email_message(event, alerts.email, sender_of(info)))
            delivered["email"] = True
        except Exception as exc:
            delivered["email"] = False
            log.warning("alert email for %s.%s not sent: %s", event.dag_id, event.task_id,
                        scrub_known(f"{type(exc).__name__}: {exc}", secrets))
    if alerts.webhook_conn_id:
        try:
            info = resolver(alerts.webhook_conn_id)
            secrets.append(info.password or "")
            post_webhook(info, slack_payload(event))
            delivered["webhook"] = True
        except Exception as exc:
            delivered["webhook"] = False
            log.warning("alert webhook for %s.%s not sent: %s", event.dag_id, event.task_id,
                        scrub_known(f"{type(exc).__name__}: {exc}", secrets))
    return delivered
