-- rulesdb: tags on rules, and a view of the active rules.

-- +goose Up
CREATE TABLE tags (
    id    serial PRIMARY KEY,
    name  text NOT NULL UNIQUE,
    color char(7)
);

CREATE TABLE rule_tags (
    rule_id bigint NOT NULL REFERENCES rules (id) ON DELETE CASCADE,
    tag_id  integer NOT NULL REFERENCES tags (id) ON DELETE CASCADE,
    added_on date NOT NULL DEFAULT current_date,
    PRIMARY KEY (rule_id, tag_id)
);

CREATE VIEW active_rules AS
SELECT r.id, p.slug AS project, r.name, r.priority, r.conditions, r.body
FROM rules r
JOIN projects p ON p.id = r.project_id
WHERE r.status = 'active' AND r.enabled;

-- +goose Down
DROP VIEW active_rules;
DROP TABLE rule_tags;
DROP TABLE tags;
