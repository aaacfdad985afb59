package pitr

import (
	"encoding/xml"
	"fmt"
	"io"
)

type junitSuite struct {
	XMLName  xml.Name    `xml:"testsuite"`
	Name     string      `xml:"name,attr"`
	Tests    int         `xml:"tests,attr"`
	Failures int         `xml:"failures,attr"`
	Cases    []junitCase `xml:"testcase"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	Failure   *junitFailure `xml:"failure,omitempty"`
	Output    string        `xml:"system-out,omitempty"`
}

type junitFailure struct {
	Message string `xml:"message,attr"`
	Text    string `xml:",chardata"`
}

// WriteJUnit writes a JUnit report of proven streams (aidb verify --pitr
// --junit): one test case per database, failed with its error.
func WriteJUnit(w io.Writer, results []VerifyResult) error {
	s := junitSuite{Name: "aidb verify --pitr", Tests: len(results)}
	for _, r := range results {
		c := junitCase{Name: r.Database, Classname: "aidb.pitr"}
		if r.Error != "" {
			s.Failures++
			c.Failure = &junitFailure{Message: "the WAL stream could not be proven restorable", Text: r.Error}
		} else {
			c.Output = fmt.Sprintf("base backup %s and the WAL after it replayed; window %s", r.Base, r.Window)
		}
		s.Cases = append(s.Cases, c)
	}
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(s); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
}
