package verify

import (
	"encoding/xml"
	"fmt"
	"io"
	"path/filepath"
	"strings"
)

type junitSuites struct {
	XMLName xml.Name     `xml:"testsuites"`
	Suites  []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name     string      `xml:"name,attr"`
	Tests    int         `xml:"tests,attr"`
	Failures int         `xml:"failures,attr"`
	Errors   int         `xml:"errors,attr"`
	Time     string      `xml:"time,attr"`
	Cases    []junitCase `xml:"testcase"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	ClassName string        `xml:"classname,attr"`
	Time      string        `xml:"time,attr"`
	Failure   *junitMessage `xml:"failure,omitempty"`
	Error     *junitMessage `xml:"error,omitempty"`
}

type junitMessage struct {
	Message string `xml:"message,attr"`
	Text    string `xml:",chardata"`
}

// WriteJUnit writes the results as a JUnit XML report, one test case per
// backup file: a difference is a failure, a file that could not be
// verified an error. CI systems publish it as test results.
func WriteJUnit(w io.Writer, results []Result) error {
	s := junitSuite{Name: "aidb verify", Tests: len(results)}
	var total float64
	for _, r := range results {
		total += r.Seconds
		c := junitCase{Name: filepath.Base(r.File), ClassName: "aidb.verify." + r.Database, Time: fmt.Sprintf("%.3f", r.Seconds)}
		switch {
		case r.Error != "":
			s.Errors++
			c.Error = &junitMessage{Message: "could not verify", Text: r.Error}
		case !r.OK:
			s.Failures++
			c.Failure = &junitMessage{Message: "differs from its manifest", Text: strings.Join(r.Differences, "\n")}
		}
		s.Cases = append(s.Cases, c)
	}
	s.Time = fmt.Sprintf("%.3f", total)
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(junitSuites{Suites: []junitSuite{s}}); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
}
