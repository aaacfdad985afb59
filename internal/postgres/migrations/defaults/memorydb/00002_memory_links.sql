-- memorydb: links between memories (a graph over the memories table).

-- +goose Up
CREATE TABLE memory_links (
    from_id   bigint NOT NULL REFERENCES memories (id) ON DELETE CASCADE,
    to_id     bigint NOT NULL REFERENCES memories (id) ON DELETE CASCADE,
    relation  text NOT NULL,
    strength  real NOT NULL DEFAULT 1,
    PRIMARY KEY (from_id, to_id, relation),
    CHECK (from_id <> to_id)
);

-- +goose Down
DROP TABLE memory_links;
