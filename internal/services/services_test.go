package services

import (
	"testing"

	"github.com/docker/compose/v5/pkg/api"
	"github.com/sirupsen/logrus"
	"github.com/stretchr/testify/assert"
)

// Compose's events become one line per change of a resource's state;
// pull layers and repeated progress are left out, and nothing is sent
// outside a call.
func TestEventsAreProgressLines(t *testing.T) {
	t.Parallel()
	e := &events{}
	var lines []string
	e.On(api.Resource{ID: "Container p-api-1", Text: "Creating"})
	done := e.route(func(l string) { lines = append(lines, l) })
	e.On(
		api.Resource{ID: "Container p-api-1", Text: "Creating", Status: api.Working},
		api.Resource{ID: "Container p-api-1", Text: "Creating", Status: api.Working},
		api.Resource{ID: "layer", ParentID: "Image api", Text: "Downloading", Percent: 40},
		api.Resource{ID: "Container p-api-1", Text: "Started", Status: api.Done},
		api.Resource{ID: "Container p-api-1", Text: "Error", Details: "exit 3", Status: api.Error},
	)
	done()
	e.On(api.Resource{ID: "Container p-api-1", Text: "Stopped"})
	assert.Equal(t, []string{"Container p-api-1: Creating", "Container p-api-1: Started", "Container p-api-1: Error (exit 3)"}, lines)
}

// Asked whether to recreate a volume (losing its data), aidb says no.
func TestPromptAnswersNo(t *testing.T) {
	t.Parallel()
	e := &events{}
	var lines []string
	defer e.route(func(l string) { lines = append(lines, l) })()
	ok, err := e.prompt(`Volume "p_data" exists but doesn't match configuration in compose file. Recreate (data will be lost)?`, true)
	assert.NoError(t, err)
	assert.False(t, ok)
	assert.Len(t, lines, 1)
	assert.Contains(t, lines[0], "aidb answers no: nothing is removed")
}

// The SDK's logrus warnings become progress lines of the running call.
func TestWarningsAreProgressLines(t *testing.T) {
	t.Parallel()
	e := &events{}
	var lines []string
	defer e.route(func(l string) { lines = append(lines, l) })()
	assert.NoError(t, e.Fire(&logrus.Entry{Level: logrus.WarnLevel, Message: "Found orphan containers"}))
	assert.Equal(t, []string{"Compose: Found orphan containers"}, lines)
	assert.Contains(t, e.Levels(), logrus.WarnLevel)
	assert.NotContains(t, e.Levels(), logrus.InfoLevel)
}
