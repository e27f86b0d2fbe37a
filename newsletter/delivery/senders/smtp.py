"""The `smtp` sender: smtplib over STARTTLS or implicit TLS, certificates verified by default.

Each thread that calls `send` keeps its own connection open across messages (one connection
per concurrent worker), reconnecting after the server closes it or after N messages. Replies
map to the error tree: 4xx and dropped connections are temporary, 5xx permanent, and a 5xx on
RCPT that says the mailbox does not exist is a hard bounce. Only answers to RCPT are about the
recipient; a refused MAIL FROM or DATA, or a server that cannot be reached, is the server's or
the message's fault and counts towards the error threshold that pauses a run.

SMTP has no way to ask a server afterwards whether it kept a message, and no idempotency: a
connection lost after the message data was sent leaves the delivery `unknown` for the operator.
"""

from __future__ import annotations

import re
import smtplib
import ssl
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from email.utils import parseaddr

from newsletter.delivery.dkim import DkimSigner
from newsletter.delivery.message import Message
from newsletter.delivery.senders.base import Sender, SenderUnavailable, SendResult, UnknownOutcome
from newsletter.errors import PermanentSendError, SendError, TemporarySendError

#: RCPT replies meaning "no such mailbox": stop mailing that address
HARD_BOUNCE_CODES = frozenset({550, 551, 553})
#: dot-stuffing (RFC 5321 4.5.2): a line starting with "." gets another
_DOT = re.compile(rb"^\.", re.MULTILINE)


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int
    security: str = "starttls"  # starttls | tls | none
    username: str = ""
    password: str = ""
    verify: bool = True
    timeout: float = 30.0
    messages_per_connection: int = 100
    local_hostname: str | None = None


class _StaleConnection(Exception):
    """The connection was gone before this message's transaction began."""


class _Connection:
    def __init__(self, smtp: smtplib.SMTP) -> None:
        self.smtp = smtp
        self.sent = 0


class SmtpSender(Sender):
    name = "smtp"
    batch_size = 1

    def __init__(self, config: SmtpConfig, *, signer: DkimSigner | None = None) -> None:
        self.config = config
        self.signer = signer
        self._local = threading.local()
        self._lock = threading.Lock()
        self._open: set[_Connection] = set()

    # -- connections ----------------------------------------------------------------------

    def _tls_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        if not self.config.verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    def _connect(self) -> _Connection:
        c = self.config
        try:
            if c.security == "tls":
                smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                    c.host, c.port, c.local_hostname, timeout=c.timeout, context=self._tls_context()
                )
            else:
                smtp = smtplib.SMTP(c.host, c.port, c.local_hostname, timeout=c.timeout)
                if c.security == "starttls":
                    smtp.starttls(context=self._tls_context())
            smtp.ehlo_or_helo_if_needed()
            if c.username:
                smtp.login(c.username, c.password)
        except ssl.SSLCertVerificationError as exc:
            raise SenderUnavailable(
                f"SMTP {c.host}:{c.port}: certificate not trusted ({exc.verify_message});"
                " fix the server or set NEWSLETTER_SMTP_VERIFY=false for a test server"
            ) from None
        except smtplib.SMTPAuthenticationError as exc:
            raise SenderUnavailable(
                f"SMTP {c.host}:{c.port}: login refused ({exc.smtp_code}); check"
                " NEWSLETTER_SMTP_USERNAME and NEWSLETTER_SMTP_PASSWORD"
            ) from None
        except smtplib.SMTPNotSupportedError as exc:
            raise SenderUnavailable(f"SMTP {c.host}:{c.port}: {exc}") from None
        except (OSError, smtplib.SMTPException) as exc:
            raise TemporarySendError(f"SMTP {c.host}:{c.port}: cannot connect ({exc})") from None
        connection = _Connection(smtp)
        with self._lock:
            self._open.add(connection)
        return connection

    def _connection(self) -> _Connection:
        connection: _Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = self._connect()
            self._local.connection = connection
        return connection

    def _drop(self, *, polite: bool = False) -> None:
        connection: _Connection | None = getattr(self._local, "connection", None)
        self._local.connection = None
        if connection is None:
            return
        with self._lock:
            self._open.discard(connection)
        try:
            if polite:
                connection.smtp.quit()
            else:
                connection.smtp.close()
        except (OSError, smtplib.SMTPException):
            connection.smtp.close()

    def close(self) -> None:
        with self._lock:
            connections, self._open = list(self._open), set()
        for connection in connections:
            try:
                connection.smtp.quit()
            except (OSError, smtplib.SMTPException):
                connection.smtp.close()

    # -- sending ----------------------------------------------------------------------------

    def send(self, messages: Sequence[Message]) -> list[SendResult]:
        return [self._send_one(message) for message in messages]

    def _send_one(self, message: Message) -> SendResult:
        try:
            data = message.as_bytes()
            if self.signer is not None:
                data = self.signer.sign(data)
        except SendError as exc:  # this reader's values cannot make a valid message
            return SendResult(message, error=PermanentSendError(str(exc), about_recipient=True))
        for reused in (True, False):
            try:
                connection = self._connection()
                reused = reused and connection.sent > 0
                provider_id = self._transact(connection.smtp, message, data)
            except SenderUnavailable:
                raise
            except _StaleConnection as exc:
                # the server closed an idle connection before MAIL: nothing was sent yet,
                # so open a fresh one at once instead of waiting out a retry
                self._drop()
                if reused:
                    continue
                return SendResult(message, error=TemporarySendError(f"connection lost: {exc}"))
            except SendError as exc:
                return SendResult(message, error=exc)
            except (OSError, smtplib.SMTPException) as exc:
                # dropped mid-transaction: the server has not said 250 to this message
                self._drop()
                return SendResult(message, error=TemporarySendError(f"connection lost: {exc}"))
            break
        connection.sent += 1
        if connection.sent >= self.config.messages_per_connection:
            self._drop(polite=True)
        return SendResult(message, provider_id=provider_id)

    def _transact(self, smtp: smtplib.SMTP, message: Message, data: bytes) -> str:
        envelope_from = parseaddr(message.from_addr)[1]
        try:
            code, reply = smtp.mail(envelope_from)
        except (OSError, smtplib.SMTPServerDisconnected) as exc:
            raise _StaleConnection(str(exc)) from None
        if code == 421:  # it timed the idle connection out
            raise _StaleConnection(f"{code} {reply!r}")
        if code != 250:
            raise self._refused("MAIL FROM", code, reply, smtp)
        code, reply = smtp.rcpt(message.to_addr)
        if code not in (250, 251):
            raise self._refused("RCPT TO", code, reply, smtp, recipient=True)
        code, reply = smtp.docmd("DATA")
        if code != 354:
            raise self._refused("DATA", code, reply, smtp)
        body = _DOT.sub(b"..", data)
        smtp.send(body + (b"" if body.endswith(b"\r\n") else b"\r\n") + b".\r\n")
        try:
            code, reply = smtp.getreply()
        except (OSError, smtplib.SMTPServerDisconnected) as exc:
            # everything was sent; only the answer is missing: it may have been accepted
            self._drop()
            raise UnknownOutcome(
                f"SMTP: connection lost awaiting the answer to DATA ({exc})"
            ) from None
        if code != 250:
            raise self._refused("DATA", code, reply, smtp)
        return _queue_id(reply) or message.message_id

    def _refused(
        self, stage: str, code: int, reply: bytes | str, smtp: smtplib.SMTP, recipient: bool = False
    ) -> SendError:
        text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
        text = " ".join(text.split())
        detail = f"SMTP {stage}: {code} {text}"
        if code == 421 or code < 200:  # the server is closing the connection (or it broke)
            self._drop()
            return TemporarySendError(detail)
        try:
            smtp.rset()
        except (OSError, smtplib.SMTPException):
            self._drop()
        if 400 <= code < 500:
            return TemporarySendError(detail, about_recipient=recipient)
        return PermanentSendError(
            detail,
            hard_bounce=recipient and code in HARD_BOUNCE_CODES,
            about_recipient=recipient,
        )


def _queue_id(reply: bytes) -> str | None:
    """`250 2.0.0 Ok: queued as 4Xy...`: keep the server's words as the provider's id."""
    text = reply.decode("utf-8", "replace").strip()
    return text[:200] or None
