# MW_HOST_TRACE's table (kernels/host_trace.h) from a train's stderr: its two header lines, the
# first ROWS sites (most time first) and the totals, each line led by PREFIX.
#   awk -v rows=12 -v prefix="  " -f scripts/host_trace_top.awk run.err
/^host trace over/ { on = 1; k = 0 }
on && (k++ < rows + 2 || / total$/) { print prefix $0 }
/ total$/ { on = 0 }
