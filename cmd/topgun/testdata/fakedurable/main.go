// Command fakedurable is a broken plugin for the CLI's tests: the in-memory
// null backend claiming to be durable, so the durability case fails.
package main

import (
	"github.com/topgun-go/topgun/abi"
	"github.com/topgun-go/topgun/plugins/null"
	"github.com/topgun-go/topgun/sdk"
)

type fakeDurable struct{ *null.Backend }

func (f fakeDurable) Describe() abi.Description {
	d := f.Backend.Describe()
	d.Name = "fakedurable"
	d.Capabilities |= abi.CapDurable
	return d
}

func init() { sdk.Serve(fakeDurable{null.Open()}) }

func main() {}
