-- +goose Up
-- Plans mirror the catalog file; rows are never deleted so that history keeps
-- pointing at the price a resource was billed on.
CREATE TABLE plans (
    id         text PRIMARY KEY,
    name       text NOT NULL,
    amount     bigint NOT NULL CHECK (amount >= 0),
    currency   text NOT NULL CHECK (currency ~ '^[a-z]{3}$'),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE tenants (
    id              text PRIMARY KEY CHECK (id ~ '^[0-9a-f]{64}$'),
    currency        text NOT NULL CHECK (currency ~ '^[a-z]{3}$'),
    -- 0 means calendar-month periods; otherwise a fixed period in seconds.
    period_seconds  bigint NOT NULL DEFAULT 0 CHECK (period_seconds >= 0),
    billing_anchor  timestamptz,
    -- The latest boundary whose renewal has been written; activities before it
    -- would reopen a closed period and are rejected.
    renewed_through timestamptz,
    status          text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'grace', 'suspended')),
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE resources (
    tenant_id        text NOT NULL REFERENCES tenants (id),
    id               text NOT NULL,
    plan_id          text NOT NULL REFERENCES plans (id),
    active           boolean NOT NULL,
    last_activity_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id)
);

CREATE TABLE activities (
    seq         bigserial PRIMARY KEY,
    id          text NOT NULL UNIQUE,
    tenant_id   text NOT NULL REFERENCES tenants (id),
    type        text NOT NULL CHECK (type IN ('resource_created', 'resource_activated', 'resource_deactivated', 'resource_plan_changed')),
    resource_id text NOT NULL,
    plan_id     text REFERENCES plans (id),
    created_at  timestamptz NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX activities_tenant_time ON activities (tenant_id, created_at, seq);

CREATE TABLE invoices (
    id             text PRIMARY KEY,
    tenant_id      text NOT NULL REFERENCES tenants (id),
    -- The claim that made the invoice; a retried claim finds its invoice here
    -- instead of making a second one.
    claim_key      text NOT NULL UNIQUE,
    currency       text NOT NULL,
    total          bigint NOT NULL CHECK (total > 0),
    status         text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'collecting', 'awaiting_payment', 'paid', 'void', 'uncollectible')),
    period_start   timestamptz NOT NULL,
    period_end     timestamptz NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    paid_at        timestamptz,
    paid_rail      text,
    paid_reference text,
    CHECK ((status = 'paid') = (paid_at IS NOT NULL))
);
CREATE INDEX invoices_tenant ON invoices (tenant_id, created_at);

CREATE TABLE invoice_items (
    id           text PRIMARY KEY,
    tenant_id    text NOT NULL REFERENCES tenants (id),
    kind         text NOT NULL CHECK (kind IN ('proration', 'renewal')),
    -- One item per activity at most.
    activity_id  text UNIQUE REFERENCES activities (id),
    resource_id  text NOT NULL,
    plan_id      text NOT NULL REFERENCES plans (id),
    amount       bigint NOT NULL CHECK (amount <> 0),
    currency     text NOT NULL,
    created_at   timestamptz NOT NULL,
    period_start timestamptz NOT NULL,
    description  text NOT NULL,
    -- A single column: an item is on at most one invoice.
    invoice_id   text REFERENCES invoices (id),
    CHECK ((kind = 'proration') = (activity_id IS NOT NULL))
);
-- A resource is renewed at most once per period.
CREATE UNIQUE INDEX invoice_items_renewal_once ON invoice_items (tenant_id, resource_id, period_start) WHERE kind = 'renewal';
CREATE INDEX invoice_items_outstanding ON invoice_items (tenant_id) WHERE invoice_id IS NULL;
CREATE INDEX invoice_items_invoice ON invoice_items (invoice_id);

-- Outbound events, written in the same transaction as the change they report.
CREATE TABLE events (
    id           text PRIMARY KEY,
    tenant_id    text NOT NULL REFERENCES tenants (id),
    type         text NOT NULL,
    subject_id   text NOT NULL,
    payload      jsonb NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    delivered_at timestamptz,
    UNIQUE (type, subject_id)
);

-- +goose Down
DROP TABLE events;
DROP TABLE invoice_items;
DROP TABLE invoices;
DROP TABLE activities;
DROP TABLE resources;
DROP TABLE tenants;
DROP TABLE plans;
