package cli

import (
	"encoding/json"
	"io"
	"net/url"

	"github.com/nscap/nscap/fcaps"
)

// SARIF 2.1.0 (https://docs.oasis-open.org/sarif/sarif/v2.1.0/), the
// subset code-scanning tools read.
type (
	sarifLog struct {
		Schema  string     `json:"$schema"`
		Version string     `json:"version"`
		Runs    []sarifRun `json:"runs"`
	}
	sarifRun struct {
		Tool    sarifTool     `json:"tool"`
		Results []sarifResult `json:"results"`
	}
	sarifTool struct {
		Driver sarifDriver `json:"driver"`
	}
	sarifDriver struct {
		Name           string      `json:"name"`
		Version        string      `json:"version,omitempty"`
		InformationURI string      `json:"informationUri"`
		Rules          []sarifRule `json:"rules"`
	}
	sarifText struct {
		Text string `json:"text"`
	}
	sarifRule struct {
		ID                   string            `json:"id"`
		Name                 string            `json:"name"`
		ShortDescription     sarifText         `json:"shortDescription"`
		FullDescription      sarifText         `json:"fullDescription"`
		Help                 sarifText         `json:"help"`
		DefaultConfiguration sarifRuleConfig   `json:"defaultConfiguration"`
		Properties           sarifRuleProperty `json:"properties"`
	}
	sarifRuleConfig struct {
		Level string `json:"level"`
	}
	sarifRuleProperty struct {
		SecuritySeverity string   `json:"security-severity"`
		Tags             []string `json:"tags"`
	}
	sarifResult struct {
		RuleID     string          `json:"ruleId"`
		RuleIndex  int             `json:"ruleIndex"`
		Level      string          `json:"level"`
		Message    sarifText       `json:"message"`
		Locations  []sarifLocation `json:"locations"`
		Properties sarifResultProp `json:"properties"`
	}
	sarifLocation struct {
		PhysicalLocation struct {
			ArtifactLocation struct {
				URI string `json:"uri"`
			} `json:"artifactLocation"`
		} `json:"physicalLocation"`
	}
	sarifResultProp struct {
		Severity   string   `json:"severity"`
		HonouredIn []string `json:"honoured_in"`
		Caps       string   `json:"caps,omitempty"`
		Layer      string   `json:"layer,omitempty"`
	}
)

// sarifLevel maps a severity to a SARIF level.
func sarifLevel(s fcaps.Severity) string {
	switch {
	case s >= fcaps.SeverityHigh:
		return "error"
	case s == fcaps.SeverityMedium:
		return "warning"
	}
	return "note"
}

// sarifScore is the security-severity score GitHub code scanning ranks
// by (critical >= 9.0, high >= 7.0, medium >= 4.0, low > 0).
var sarifScore = map[fcaps.Severity]string{
	fcaps.SeverityInfo: "0.0", fcaps.SeverityLow: "3.0", fcaps.SeverityMedium: "5.5",
	fcaps.SeverityHigh: "8.0", fcaps.SeverityCritical: "9.5",
}

func writeSARIF(w io.Writer, version string, fs []fcaps.Finding) error {
	rules := fcaps.Rules()
	index := map[string]int{}
	driver := sarifDriver{Name: "nscap", Version: version, InformationURI: "https://github.com/nscap/nscap"}
	for i, r := range rules {
		index[r.ID] = i
		driver.Rules = append(driver.Rules, sarifRule{
			ID: r.ID, Name: r.Name,
			ShortDescription:     sarifText{r.Summary},
			FullDescription:      sarifText{r.Summary},
			Help:                 sarifText{r.Explanation},
			DefaultConfiguration: sarifRuleConfig{Level: sarifLevel(r.Severity)},
			Properties:           sarifRuleProperty{SecuritySeverity: sarifScore[r.Severity], Tags: []string{"security", "capabilities"}},
		})
	}
	run := sarifRun{Tool: sarifTool{Driver: driver}, Results: []sarifResult{}}
	for _, f := range fs {
		res := sarifResult{
			RuleID: f.Rule.ID, RuleIndex: index[f.Rule.ID], Level: sarifLevel(f.Severity()),
			Message:    sarifText{f.Message},
			Properties: sarifResultProp{Severity: f.Severity().String(), HonouredIn: f.Scope.Strings(), Caps: f.CapsText(), Layer: f.Layer},
		}
		var loc sarifLocation
		loc.PhysicalLocation.ArtifactLocation.URI = (&url.URL{Path: f.Path}).String()
		res.Locations = []sarifLocation{loc}
		run.Results = append(run.Results, res)
	}
	log := sarifLog{Schema: "https://json.schemastore.org/sarif-2.1.0.json", Version: "2.1.0", Runs: []sarifRun{run}}
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	return enc.Encode(log)
}
