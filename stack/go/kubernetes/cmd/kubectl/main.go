// Command kubectl is the upstream kubectl, built at the same version as the control plane.
package main

import (
	"k8s.io/component-base/cli"
	"k8s.io/kubectl/pkg/cmd"
)

func main() {
	command := cmd.NewDefaultKubectlCommand()
	cli.RunNoErrOutput(command)
}
