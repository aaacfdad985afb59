-- rulesdb: every saved version of a rule.

-- +goose Up
CREATE TABLE rule_versions (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    rule_id     bigint NOT NULL REFERENCES rules (id) ON DELETE CASCADE,
    version     integer NOT NULL,
    body        text NOT NULL,
    checksum    bytea NOT NULL,
    author      text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (rule_id, version)
);

-- +goose Down
DROP TABLE rule_versions;
