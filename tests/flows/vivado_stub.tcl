# vivado_stub.tcl -- a recording stand-in for the Vivado Tcl commands that
# filmqnn_hw/flows/vivado.py's build_bitstream.tcl uses, so the script can be run with a plain
# `tclsh` (tests/flows/test_vivado.py). It is NOT Vivado: it checks names and order, not
# hardware.
#
#   tclsh:  source vivado_stub.tcl; source build_bitstream.tcl
#
# Every call is appended to the file $::env(FQ_STUB_LOG), one line per call, fields separated
# by tabs (backslash, tab and newline inside a field are written as \\, \t, \n);
# `set_property -dict {k v ...} obj` is logged as one `set_property k v obj` line per pair.
#
# What it models:
#   * add_files parses Verilog modules and their ports; `create_bd_cell -type module
#     -reference M` needs M in an added file, and that cell's pins are M's ports and its
#     interfaces are the prefixes X of ports X_awaddr (s_axi_* slaves: AXI4LITE, m_axi_*
#     masters: AXI4, CONFIG.DATA_WIDTH = width of X_wdata). Unknown pins/interfaces of a
#     module cell return "" (as Vivado does), connect_bd_* refuse empty objects.
#   * IP cells accept any pin name; get_ipdefs knows a few Xilinx IPs (version 9.9).
#   * launch_runs synth_1 writes <proj>.gen/sources_1/bd/<bd>/hw_handoff/<bd>.hwh, impl_1
#     (-to_step write_bitstream) writes <proj>.runs/impl_1/<top>.bit for the fileset's top.
#   * STATS.WNS / STATS.WHS of runs: $::env(FQ_STUB_WNS) / FQ_STUB_WHS (default 0.112 / 0.021);
#     `version -short`: $::env(FQ_STUB_VERSION) (default 2022.2); get_board_parts matches
#     $::env(FQ_STUB_BOARD_PARTS) (default: none installed).
#   * Any other command that is not Tcl is an error ("command not modelled").

namespace eval ::stub {
    variable log [open $::env(FQ_STUB_LOG) a]
    fconfigure $log -buffering line
    variable modules [dict create]   ;# module -> {port {dir width}}
    variable cells [dict create]     ;# cell -> {kind ip|module what vlnv-or-module}
    variable props [dict create]     ;# object -> {prop value}
    variable segs [dict create]      ;# assigned segment -> {offset range}
    variable proj_dir ""
    variable proj_name ""
    variable bd ""
    variable launched {}
    variable ips {processing_system7 zynq_ultra_ps_e proc_sys_reset smartconnect
                  axi_interconnect xlconcat axi_intc}
}

proc ::stub::esc {s} { return [string map [list \\ \\\\ \t \\t \n \\n] $s] }
proc ::stub::rec {args} {
    variable log
    puts $log [join [lmap a $args {esc $a}] \t]
}
# options: dict of -name value (names in $valued take a value), other dashes are flags (1)
proc ::stub::opts {argv valued} {
    set o [dict create]
    set pos {}
    for {set i 0} {$i < [llength $argv]} {incr i} {
        set a [lindex $argv $i]
        if {[string index $a 0] eq "-" && ![string is double -strict $a]} {
            if {$a in $valued} {
                dict set o $a [lindex $argv [incr i]]
            } else {
                dict set o $a 1
            }
        } else {
            lappend pos $a
        }
    }
    return [list $o $pos]
}
proc ::stub::fail {msg} { error "vivado_stub: $msg" }
proc ::stub::module_of {cell} {
    variable cells
    if {![dict exists $cells $cell]} { return "" }
    set c [dict get $cells $cell]
    if {[dict get $c kind] ne "module"} { return "" }
    return [dict get $c what]
}
proc ::stub::ports {module} {
    variable modules
    return [dict get $modules $module]
}
proc ::stub::intfs {module} {
    set r {}
    foreach p [dict keys [ports $module]] {
        if {[regexp {^(.*)_awaddr$} $p -> x]} { lappend r $x }
    }
    return $r
}
proc ::stub::split_path {path} {
    set i [string first / $path]
    if {$i < 0} { return [list $path ""] }
    return [list [string range $path 0 [expr {$i - 1}]] [string range $path [expr {$i + 1}] end]]
}
proc ::stub::touch {path text} {
    file mkdir [file dirname $path]
    set f [open $path w]
    puts $f $text
    close $f
}
proc ::stub::gen_dir {} {
    variable proj_dir; variable proj_name; variable bd
    return $proj_dir/$proj_name.gen/sources_1/bd/$bd
}

rename unknown ::stub::tcl_unknown
proc unknown {args} {
    set cmd [lindex $args 0]
    if {[string match ::* $cmd] || [string match tcl* $cmd] || [string match auto_* $cmd]} {
        return [uplevel 1 [list ::stub::tcl_unknown {*}$args]]
    }
    ::stub::fail "Vivado command not modelled: $cmd"
}

# -- project ----------------------------------------------------------------------------------
proc version {args} {
    ::stub::rec version {*}$args
    if {[info exists ::env(FQ_STUB_VERSION)]} { return $::env(FQ_STUB_VERSION) }
    return 2022.2
}
proc create_project {args} {
    ::stub::rec create_project {*}$args
    lassign [::stub::opts $args {-part}] o pos
    if {[llength $pos] != 2} { ::stub::fail "create_project needs NAME DIR: $args" }
    if {![dict exists $o -part]} { ::stub::fail "create_project without -part" }
    lassign $pos ::stub::proj_name ::stub::proj_dir
    if {[file exists $::stub::proj_dir] && ![dict exists $o -force]} {
        ::stub::fail "project directory $::stub::proj_dir exists (no -force)"
    }
    file mkdir $::stub::proj_dir
    dict set ::stub::props project -part [dict get $o -part]
    return $::stub::proj_name
}
proc current_project {args} { ::stub::rec current_project {*}$args; return project }
proc current_fileset {args} { ::stub::rec current_fileset {*}$args; return sources_1 }
proc get_board_parts {args} {
    ::stub::rec get_board_parts {*}$args
    lassign [::stub::opts $args {}] o pos
    set have {}
    if {[info exists ::env(FQ_STUB_BOARD_PARTS)]} { set have $::env(FQ_STUB_BOARD_PARTS) }
    return [lsearch -all -inline -glob $have [lindex $pos 0]]
}
proc get_ipdefs {args} {
    ::stub::rec get_ipdefs {*}$args
    lassign [::stub::opts $args {-filter}] o pos
    set f [expr {[dict exists $o -filter] ? [dict get $o -filter] : [lindex $pos 0]}]
    if {![regexp {xilinx\.com:ip:(\w+):\*} $f -> name]} { ::stub::fail "get_ipdefs $args" }
    if {$name ni $::stub::ips} { return "" }
    return "xilinx.com:ip:$name:9.9"
}
proc add_files {args} {
    ::stub::rec add_files {*}$args
    lassign [::stub::opts $args {-fileset}] o pos
    foreach f $pos {
        if {![file exists $f]} { ::stub::fail "add_files: $f does not exist" }
        if {[file extension $f] ne ".v"} { continue }
        set fh [open $f]; set text [read $fh]; close $fh
        foreach chunk [split [string map [list endmodule \x01] $text] \x01] {
            if {![regexp -line {^\s*module\s+(\w+)\s*\(} $chunk -> m]} { continue }
            set ports [dict create]
            foreach {_ dir hi lo name} [regexp -all -inline -line \
                    {^\s*(input|output|inout)\s+(?:\[(\d+):(\d+)\]\s+)?(\w+)\s*;} $chunk] {
                set w [expr {$hi eq "" ? 1 : $hi - $lo + 1}]
                dict set ports $name [list $dir $w]
            }
            dict set ::stub::modules $m $ports
        }
    }
    return $pos
}
proc update_compile_order {args} { ::stub::rec update_compile_order {*}$args }
proc get_files {args} {
    ::stub::rec get_files {*}$args
    lassign [::stub::opts $args {-of_objects}] o pos
    set p [lindex $pos 0]
    if {$p eq "$::stub::bd.bd"} { return [::stub::gen_dir]/$::stub::bd.bd }
    ::stub::fail "get_files: no file matches $p"
}

# -- properties -------------------------------------------------------------------------------
proc set_property {args} {
    lassign [::stub::opts $args {-dict}] o pos
    if {[dict exists $o -dict]} {
        set pairs [dict get $o -dict]
        set objs $pos
    } else {
        set pairs [lrange $pos 0 1]
        set objs [lrange $pos 2 end]
    }
    if {[llength $objs] == 0 || [lindex $objs 0] eq ""} {
        ::stub::fail "set_property on no object: $args"
    }
    foreach {k v} $pairs {
        foreach obj $objs {
            ::stub::rec set_property $k $v $obj
            dict set ::stub::props $obj $k $v
        }
    }
}
proc get_property {name obj} {
    ::stub::rec get_property $name $obj
    switch -glob -- $name {
        STATS.WNS {
            return [expr {[info exists ::env(FQ_STUB_WNS)] ? $::env(FQ_STUB_WNS) : 0.112}]
        }
        STATS.WHS {
            return [expr {[info exists ::env(FQ_STUB_WHS)] ? $::env(FQ_STUB_WHS) : 0.021}]
        }
        PROGRESS { return [expr {$obj in $::stub::launched ? "100%" : "0%"}] }
        STATUS {
            if {$obj ni $::stub::launched} { return "Not started" }
            return [expr {$obj eq "impl_1" ? "write_bitstream Complete!" : "synth_design Complete!"}]
        }
        DIRECTORY { return $::stub::proj_dir/$::stub::proj_name.runs/$obj }
        OFFSET - RANGE {
            if {![dict exists $::stub::segs $obj]} { ::stub::fail "$name of unassigned $obj" }
            return [dict get $::stub::segs $obj [string tolower $name]]
        }
        CONFIG.PROTOCOL - CONFIG.DATA_WIDTH {
            lassign [::stub::split_path $obj] cell intf
            set m [::stub::module_of $cell]
            if {$m ne ""} {
                if {$name eq "CONFIG.PROTOCOL"} {
                    return [expr {[string match s_axi_* $intf] ? "AXI4LITE" : "AXI4"}]
                }
                return [lindex [dict get [::stub::ports $m] ${intf}_wdata] 1]
            }
        }
        CONFIG.*ACT_* {
            # the PS makes exactly the requested clock in this stand-in
            set req [string map {ACT_ ""} $name]
            if {[dict exists $::stub::props $obj $req]} {
                return [dict get $::stub::props $obj $req]
            }
        }
    }
    if {[dict exists $::stub::props $obj $name]} { return [dict get $::stub::props $obj $name] }
    return ""
}

# -- block design ----------------------------------------------------------------------------
proc create_bd_design {args} {
    ::stub::rec create_bd_design {*}$args
    if {$::stub::proj_dir eq ""} { ::stub::fail "create_bd_design before create_project" }
    set ::stub::bd [lindex $args end]
    return $::stub::bd
}
proc create_bd_cell {args} {
    ::stub::rec create_bd_cell {*}$args
    lassign [::stub::opts $args {-type -vlnv -reference}] o pos
    set name [lindex $pos 0]
    if {$::stub::bd eq ""} { ::stub::fail "create_bd_cell before create_bd_design" }
    if {[dict exists $::stub::cells $name]} { ::stub::fail "cell $name exists" }
    switch -- [dict get $o -type] {
        ip {
            set v [dict get $o -vlnv]
            if {![regexp {^xilinx\.com:ip:(\w+):[0-9.]+$} $v -> ip] || $ip ni $::stub::ips} {
                ::stub::fail "unknown IP $v"
            }
            dict set ::stub::cells $name [dict create kind ip what $ip]
        }
        module {
            set m [dict get $o -reference]
            if {![dict exists $::stub::modules $m]} {
                ::stub::fail "module reference $m: no such module in the added sources"
            }
            dict set ::stub::cells $name [dict create kind module what $m]
        }
        default { ::stub::fail "create_bd_cell -type [dict get $o -type]" }
    }
    return $name
}
proc get_bd_cells {args} {
    ::stub::rec get_bd_cells {*}$args
    set n [lindex $args end]
    return [expr {[dict exists $::stub::cells $n] ? $n : ""}]
}
proc get_bd_pins {args} {
    ::stub::rec get_bd_pins {*}$args
    lassign [::stub::split_path [lindex $args end]] cell pin
    if {![dict exists $::stub::cells $cell]} { return "" }
    set m [::stub::module_of $cell]
    if {$m ne "" && ![dict exists [::stub::ports $m] $pin]} { return "" }
    return $cell/$pin
}
proc get_bd_intf_pins {args} {
    ::stub::rec get_bd_intf_pins {*}$args
    lassign [::stub::split_path [lindex $args end]] cell intf
    if {![dict exists $::stub::cells $cell]} { return "" }
    set m [::stub::module_of $cell]
    if {$m ne "" && $intf ni [::stub::intfs $m]} { return "" }
    return $cell/$intf
}
proc ::stub::need {what objs} {
    foreach x $objs {
        if {$x eq ""} { fail "$what: an empty object (a pin that does not exist)" }
    }
}
proc connect_bd_net {args} {
    ::stub::rec connect_bd_net {*}$args
    lassign [::stub::opts $args {}] o pos
    if {[llength $pos] < 2} { ::stub::fail "connect_bd_net needs two pins: $args" }
    ::stub::need connect_bd_net $pos
}
proc connect_bd_intf_net {args} {
    ::stub::rec connect_bd_intf_net {*}$args
    lassign [::stub::opts $args {}] o pos
    if {[llength $pos] != 2} { ::stub::fail "connect_bd_intf_net needs two interfaces: $args" }
    ::stub::need connect_bd_intf_net $pos
}
proc apply_bd_automation {args} {
    ::stub::rec apply_bd_automation {*}$args
    lassign [::stub::opts $args {-rule -config}] o pos
    ::stub::need apply_bd_automation $pos
    if {[llength [dict get $o -config]] % 2} { ::stub::fail "odd -config [dict get $o -config]" }
}
proc get_bd_addr_spaces {args} {
    ::stub::rec get_bd_addr_spaces {*}$args
    lassign [::stub::split_path [lindex $args end]] cell space
    if {![dict exists $::stub::cells $cell]} { return "" }
    set m [::stub::module_of $cell]
    if {$m ne "" && ($space ni [::stub::intfs $m] || ![string match m_axi_* $space])} {
        return ""
    }
    return $cell/$space
}
proc get_bd_addr_segs {args} {
    ::stub::rec get_bd_addr_segs {*}$args
    lassign [::stub::opts $args {-of_objects}] o pos
    set pat [lindex $pos 0]
    # segments assigned in an address space
    set hits [lsearch -all -inline -glob [dict keys $::stub::segs] $pat]
    if {[llength $hits]} { return $hits }
    lassign [::stub::split_path $pat] cell rest
    if {![dict exists $::stub::cells $cell]} { return "" }
    set m [::stub::module_of $cell]
    if {$m ne ""} {
        # a module's slave interface has one segment, reg0
        lassign [::stub::split_path $rest] intf seg
        if {$intf in [::stub::intfs $m] && [string match s_axi_* $intf]
            && [string match $seg reg0]} {
            return $cell/$intf/reg0
        }
        return ""
    }
    if {[string first * $pat] >= 0} { return "" }
    return $pat
}
proc assign_bd_address {args} {
    ::stub::rec assign_bd_address {*}$args
    lassign [::stub::opts $args {-offset -range -target_address_space}] o pos
    ::stub::need assign_bd_address $pos
    if {![dict exists $o -target_address_space] || [dict get $o -target_address_space] eq ""} {
        ::stub::fail "assign_bd_address without a target address space: $args"
    }
    set space [dict get $o -target_address_space]
    foreach seg $pos {
        set cell [lindex [split $seg /] 0]
        set name $space/SEG_${cell}_[lindex [split $seg /] end]
        set off 0x00000000
        set rng 512M
        if {[dict exists $o -offset]} { set off [dict get $o -offset] }
        if {[dict exists $o -range]} { set rng [dict get $o -range] }
        dict set ::stub::segs $name [dict create offset $off range $rng]
    }
}
proc validate_bd_design {args} { ::stub::rec validate_bd_design {*}$args }
proc save_bd_design {args} { ::stub::rec save_bd_design {*}$args }
proc regenerate_bd_layout {args} { ::stub::rec regenerate_bd_layout {*}$args }
proc make_wrapper {args} {
    ::stub::rec make_wrapper {*}$args
    set f [::stub::gen_dir]/hdl/$::stub::bd\_wrapper.v
    ::stub::touch $f "module $::stub::bd\_wrapper(); endmodule"
    return $f
}

# -- runs --------------------------------------------------------------------------------------
proc get_runs {args} { ::stub::rec get_runs {*}$args; return [lindex $args end] }
proc launch_runs {args} {
    ::stub::rec launch_runs {*}$args
    lassign [::stub::opts $args {-jobs -to_step}] o pos
    set run [lindex $pos 0]
    set top [get_property top sources_1]
    switch -- $run {
        synth_1 {
            if {$top eq ""} { ::stub::fail "launch_runs synth_1: no top set on sources_1" }
            ::stub::touch [::stub::gen_dir]/hw_handoff/$::stub::bd.hwh "<stub hwh $::stub::bd/>"
        }
        impl_1 {
            if {"synth_1" ni $::stub::launched} { ::stub::fail "impl_1 before synth_1" }
            if {![dict exists $o -to_step] || [dict get $o -to_step] ne "write_bitstream"} {
                ::stub::fail "impl_1 without -to_step write_bitstream: no bitstream"
            }
            ::stub::touch $::stub::proj_dir/$::stub::proj_name.runs/impl_1/$top.bit "stub bit $top"
        }
        default { ::stub::fail "unknown run $run" }
    }
    lappend ::stub::launched $run
}
proc wait_on_run {args} {
    ::stub::rec wait_on_run {*}$args
    if {[lindex $args end] ni $::stub::launched} { ::stub::fail "wait_on_run [lindex $args end]: not launched" }
}
proc open_run {args} { ::stub::rec open_run {*}$args }
proc ::stub::report {cmd args} {
    rec $cmd {*}$args
    lassign [opts $args {-file}] o pos
    if {[dict exists $o -file]} { touch [dict get $o -file] "stub $cmd" }
}
proc report_timing_summary {args} { ::stub::report report_timing_summary {*}$args }
proc report_utilization {args} { ::stub::report report_utilization {*}$args }
