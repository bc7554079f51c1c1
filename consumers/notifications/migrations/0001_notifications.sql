-- The notifications service's tables (in its own schema; see ORDERFLOW_DATABASE_SCHEMA).

-- E-mails the consumer handed to RabbitMQ (publisher-confirmed), one row per Message-ID. Written
-- in the same transaction as the event's idempotency claim.
CREATE TABLE queued_emails (
    message_id TEXT PRIMARY KEY,
    order_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('customer', 'agent')),
    recipients TEXT[] NOT NULL,
    lang TEXT NOT NULL,
    subject TEXT NOT NULL,
    queued_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX queued_emails_order ON queued_emails (order_id);

-- What the mailer did with each Message-ID. `sending`: an SMTP attempt is under way (or was cut
-- short by a crash); `retrying`: the last attempt failed temporarily; `sent`: the SMTP server
-- accepted it (250); `failed`: refused permanently and moved to the dead-letter queue.
-- `interrupted` counts attempts that ended with no recorded outcome: each may have reached the
-- receiver, so a receiver can hold that many extra copies, all with this Message-ID.
CREATE TABLE sent_emails (
    message_id TEXT PRIMARY KEY,
    order_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    recipients TEXT[] NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('sending', 'retrying', 'sent', 'failed')),
    attempts INTEGER NOT NULL,
    interrupted INTEGER NOT NULL DEFAULT 0,
    first_attempt_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_attempt_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    sent_at TIMESTAMPTZ,
    smtp_response TEXT,
    last_error TEXT
);

CREATE INDEX sent_emails_order ON sent_emails (order_id);
