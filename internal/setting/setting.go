// Package setting names a setting in messages: the host, the protocol
// server and the metrics collector name topgun-server's environment
// variables unless the program embedding them renames them (their
// Options.SettingName).
package setting

// Name returns what rename makes of the environment variable env, or env
// itself when rename is nil or returns "".
func Name(rename func(env string) string, env string) string {
	if rename != nil {
		if n := rename(env); n != "" {
			return n
		}
	}
	return env
}
