package main

import (
	"strings"
	"testing"

	"github.com/topgun-go/topgun/host"
)

// TestPluginUsage_namesEverySettingRead keeps the plugin commands' usage
// true: every TOPGUN_PLUGIN_* setting they read from the environment (all
// that host.OptionsFromEnv reads, but the data directory and configuration,
// which the commands replace) is named, as a wrong value of any of them
// stops the command.
func TestPluginUsage_namesEverySettingRead(t *testing.T) {
	t.Parallel()
	var read []string
	host.OptionsFromEnv(func(name string) (string, bool) {
		read = append(read, name)
		return "", false
	})
	if len(read) == 0 {
		t.Fatal("host.OptionsFromEnv read no setting")
	}
	usage := strings.Join(strings.Fields(envSettings), " ")
	for _, name := range read {
		if name == "TOPGUN_PLUGIN_DATA_DIR" || name == "TOPGUN_PLUGIN_CONFIG" {
			continue
		}
		if !strings.Contains(usage, name) {
			t.Errorf("the plugin commands' usage does not name %s, which they read:\n%s", name, envSettings)
		}
	}
}
