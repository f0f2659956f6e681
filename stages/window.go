package stages

// The window stage has a package of its own; importing stages registers it
// along with the others.
import _ "github.com/sluicedev/sluice/stages/window"
