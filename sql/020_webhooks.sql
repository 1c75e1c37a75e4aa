-- 020_webhooks.sql - outgoing webhooks and their durable outbox (webhook.h).
--
-- webhooks: where to POST which events.  events: the canonical comma list
-- of event kinds (webhook_events_parse()); secret: the HMAC-SHA256 key of
-- the signature, as given (--secret-file) or made (32 random bytes, hex).
-- The database holds it: protect the database file as the token secret.
--
-- webhook_outbox: one row per event and webhook, written by the trigger
-- below in the same transaction as the event itself (every event herald
-- records goes through eventlog.c's INSERT INTO events), so an event is
-- never recorded without its deliveries, nor the reverse.  payload is the
-- JSON body, made once here (webhook.h says its fields).  status: pending
-- (next_at says when to try), delivered, failed (gave up after
-- [webhooks] give_up); attempts and last_error say what happened.
-- subscriber_id cascades: erasing a person (privacy.h) removes the
-- payloads that name them, sent or not.
CREATE TABLE webhooks (
	id         INTEGER PRIMARY KEY,
	url        TEXT NOT NULL CHECK (url GLOB 'http://*' OR url GLOB 'https://*'),
	events     TEXT NOT NULL CHECK (length(events) > 0),
	secret     TEXT NOT NULL CHECK (length(secret) >= 16),
	created_at INTEGER NOT NULL
);

CREATE TABLE webhook_outbox (
	id            INTEGER PRIMARY KEY,
	webhook_id    INTEGER NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
	event_id      INTEGER NOT NULL,
	kind          TEXT NOT NULL,
	subscriber_id INTEGER REFERENCES subscribers(id) ON DELETE CASCADE,
	payload       TEXT NOT NULL CHECK (json_valid(payload)),
	status        TEXT NOT NULL DEFAULT 'pending'
	              CHECK (status IN ('pending', 'delivered', 'failed')),
	attempts      INTEGER NOT NULL DEFAULT 0,
	created_at    INTEGER NOT NULL,
	next_at       INTEGER NOT NULL,
	last_error    TEXT,
	delivered_at  INTEGER
);
-- the sender's question: what is due, oldest first
CREATE INDEX webhook_outbox_due ON webhook_outbox(status, next_at);
CREATE INDEX webhook_outbox_by_subscriber ON webhook_outbox(subscriber_id);
CREATE INDEX webhook_outbox_by_webhook ON webhook_outbox(webhook_id);

-- With no webhook, the SELECT finds nothing: an event costs one empty
-- lookup more.  The payload names the person by address as it is now.
CREATE TRIGGER webhook_outbox_on_event AFTER INSERT ON events
WHEN EXISTS (SELECT 1 FROM webhooks)
BEGIN
	INSERT INTO webhook_outbox (webhook_id, event_id, kind, subscriber_id, payload,
	                            created_at, next_at)
	SELECT w.id, NEW.id, NEW.kind, NEW.subscriber_id,
	       json_object('id', NEW.id, 'type', NEW.kind, 'at', NEW.at,
	                   'email', (SELECT s.email FROM subscribers s
	                            WHERE s.id = NEW.subscriber_id),
	                   'subscriber_id', NEW.subscriber_id,
	                   'list', (SELECT l.name FROM lists l WHERE l.id = NEW.list_id),
	                   'issue', NEW.issue_id,
	                   'detail', json(NEW.detail)),
	       NEW.at, NEW.at
	FROM webhooks w
	WHERE instr(',' || w.events || ',', ',' || NEW.kind || ',') > 0;
END;
