/*
 * The haproxy plugin, loaded from the build tree and driven through the
 * fake host against a fake runtime API on the same event base: it reads a
 * command line, answers with replies captured from Debian's HAProxy 2.6
 * (show stat <be> 6 -1;show servers state <be>, for a backend `be` of
 * node-1..node-3 in various states) and closes, as HAProxy's
 * non-interactive mode does; or it misbehaves (silence, reset, a cut or
 * oversized reply, an error text).
 */
#include <sys/socket.h>
#include <sys/un.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <dlfcn.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>

#include "fake_host.h"

#define HAPROXY_PLUGIN TEST_BUILD_PLUGIN_DIR "/troika-haproxy.so"
#define QUERY "show stat be 6 -1;show servers state be\n"

/* ---- replies captured from haproxy 2.6.12 (Debian 12) ---- */

static const char reply_allup[] =
    "# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,er"
    "eq,econ,eresp,wretr,wredis,status,weight,act,bck,chkfail,chkdown,las"
    "tchg,downtime,qlimit,pid,iid,sid,throttle,lbtot,tracked,type,rate,ra"
    "te_lim,rate_max,check_status,check_code,check_duration,hrsp_1xx,hrsp"
    "_2xx,hrsp_3xx,hrsp_4xx,hrsp_5xx,hrsp_other,hanafail,req_rate,req_rat"
    "e_max,req_tot,cli_abrt,srv_abrt,comp_in,comp_out,comp_byp,comp_rsp,l"
    "astsess,last_chk,last_agt,qtime,ctime,rtime,ttime,agent_status,agent"
    "_code,agent_duration,check_desc,agent_desc,check_rise,check_fall,che"
    "ck_health,agent_rise,agent_fall,agent_health,addr,cookie,mode,algo,c"
    "onn_rate,conn_rate_max,conn_tot,intercepted,dcon,dses,wrew,connect,r"
    "euse,cache_lookups,cache_hits,srv_icur,src_ilim,qtime_max,ctime_max,"
    "rtime_max,ttime_max,eint,idle_conn_cur,safe_conn_cur,used_conn_cur,n"
    "eed_conn_est,uweight,agg_server_status,agg_server_check_status,agg_c"
    "heck_status,-,ssl_sess,ssl_reused_sess,ssl_failed_handshake,h2_heade"
    "rs_rcvd,h2_data_rcvd,h2_settings_rcvd,h2_rst_stream_rcvd,h2_goaway_r"
    "cvd,h2_detected_conn_protocol_errors,h2_detected_strm_protocol_error"
    "s,h2_rst_stream_resp,h2_goaway_resp,h2_open_connections,h2_backend_o"
    "pen_streams,h2_total_connections,h2_backend_total_streams,h1_open_co"
    "nnections,h1_open_streams,h1_total_connections,h1_total_streams,h1_b"
    "ytes_in,h1_bytes_out,h1_spliced_bytes_in,h1_spliced_bytes_out,\n"
    "be,node-1,0,0,0,0,,0,0,0,,0,,0,0,0,0,UP,1,1,0,0,0,2,0,,1,3,1,,0,,2,0"
    ",,0,* L7OK,0,0,0,0,0,0,0,0,,,,0,0,0,,,,,-1,,,0,0,0,0,,,,Layer7 check"
    " passed,,1,2,2,,,,127.0.1.1:35603,,http,,,,,,,,0,0,0,,,0,,0,0,0,0,0,"
    "0,0,0,1,1,,,,-,0,0,0,,,,,,,,,,,,,,,,,,,,,,\n"
    "be,node-2,0,0,0,0,,0,0,0,,0,,0,0,0,0,UP,1,1,0,0,0,2,0,,1,3,2,,0,,2,0"
    ",,0,L7OK,200,1,0,0,0,0,0,0,,,,0,0,0,,,,,-1,,,0,0,0,0,,,,Layer7 check"
    " passed,,1,2,2,,,,127.0.1.2:35603,,http,,,,,,,,0,0,0,,,0,,0,0,0,0,0,"
    "0,0,0,1,1,,,,-,0,0,0,,,,,,,,,,,,,,,,,,,,,,\n"
    "be,node-3,0,0,0,0,,0,0,0,,0,,0,0,0,0,UP,1,1,0,0,0,2,0,,1,3,3,,0,,2,0"
    ",,0,L7OK,200,0,0,0,0,0,0,0,,,,0,0,0,,,,,-1,,,0,0,0,0,,,,Layer7 check"
    " passed,,1,2,2,,,,127.0.1.3:35603,,http,,,,,,,,0,0,0,,,0,,0,0,0,0,0,"
    "0,0,0,1,1,,,,-,0,0,0,,,,,,,,,,,,,,,,,,,,,,\n"
    "be,BACKEND,0,0,0,0,999,0,0,0,0,0,,0,0,0,0,UP,3,3,0,,0,2,0,,1,3,0,,0,"
    ",1,0,,0,,,,0,0,0,0,0,0,,,,0,0,0,0,0,0,0,-1,,,0,0,0,0,,,,,,,,,,,,,,ht"
    "tp,roundrobin,,,,,,,0,0,0,0,0,,,0,0,0,0,0,,,,,3,0,0,0,-,0,0,0,0,0,0,"
    "0,0,0,0,0,0,0,0,0,0,1,1,22,22,15001,396,0,0,\n"
    "\n"
    "1\n"
    "# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_stat"
    "e srv_uweight srv_iweight srv_time_since_last_change srv_check_statu"
    "s srv_check_result srv_check_health srv_check_state srv_agent_state "
    "bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_s"
    "sl srv_check_port srv_check_addr srv_agent_addr srv_agent_port\n"
    "3 be 1 node-1 127.0.1.1 2 0 1 1 2 15 0 2 7 0 0 0 - 35603 - 0 0 - - 0"
    "\n"
    "3 be 2 node-2 127.0.1.2 2 0 1 1 2 15 3 2 6 0 0 0 - 35603 - 0 0 - - 0"
    "\n"
    "3 be 3 node-3 127.0.1.3 2 0 1 1 2 15 3 2 6 0 0 0 - 35603 - 0 0 - - 0"
    "\n"
    "\n";

static const char reply_maint2[] =
    "# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,er"
    "eq,econ,eresp,wretr,wredis,status,weight,act,bck,chkfail,chkdown,las"
    "tchg,downtime,qlimit,pid,iid,sid,throttle,lbtot,tracked,type,rate,ra"
    "te_lim,rate_max,check_status,check_code,check_duration,hrsp_1xx,hrsp"
    "_2xx,hrsp_3xx,hrsp_4xx,hrsp_5xx,hrsp_other,hanafail,req_rate,req_rat"
    "e_max,req_tot,cli_abrt,srv_abrt,comp_in,comp_out,comp_byp,comp_rsp,l"
    "astsess,last_chk,last_agt,qtime,ctime,rtime,ttime,agent_status,agent"
    "_code,agent_duration,check_desc,agent_desc,check_rise,check_fall,che"
    "ck_health,agent_rise,agent_fall,agent_health,addr,cookie,mode,algo,c"
    "onn_rate,conn_rate_max,conn_tot,intercepted,dcon,dses,wrew,connect,r"
    "euse,cache_lookups,cache_hits,srv_icur,src_ilim,qtime_max,ctime_max,"
    "rtime_max,ttime_max,eint,idle_conn_cur,safe_conn_cur,used_conn_cur,n"
    "eed_conn_est,uweight,agg_server_status,agg_server_check_status,agg_c"
    "heck_status,-,ssl_sess,ssl_reused_sess,ssl_failed_handshake,h2_heade"
    "rs_rcvd,h2_data_rcvd,h2_settings_rcvd,h2_rst_stream_rcvd,h2_goaway_r"
    "cvd,h2_detected_conn_protocol_errors,h2_detected_strm_protocol_error"
    "s,h2_rst_stream_resp,h2_goaway_resp,h2_open_connections,h2_backend_o"
    "pen_streams,h2_total_connections,h2_backend_total_streams,h1_open_co"
    "nnections,h1_open_streams,h1_total_connections,h1_total_streams,h1_b"
    "ytes_in,h1_bytes_out,h1_spliced_bytes_in,h1_spliced_bytes_out,\n"
    "be,node-1,0,0,0,0,,0,0,0,,0,,0,0,0,0,UP,1,1,0,0,0,2,0,,1,3,1,,0,,2,0"
    ",,0,L7OK,200,1,0,0,0,0,0,0,,,,0,0,0,,,,,-1,,,0,0,0,0,,,,Layer7 check"
    " passed,,1,2,2,,,,127.0.1.1:35603,,http,,,,,,,,0,0,0,,,0,,0,0,0,0,0,"
    "0,0,0,1,1,,,,-,0,0,0,,,,,,,,,,,,,,,,,,,,,,\n"
    "be,node-2,0,0,0,0,,0,0,0,,0,,0,0,0,0,MAINT,1,1,0,0,1,0,0,,1,3,2,,0,,"
    "2,0,,0,,,,0,0,0,0,0,0,,,,0,0,0,,,,,-1,,,0,0,0,0,,,,,,,,,,,,127.0.1.2"
    ":35603,,http,,,,,,,,0,0,0,,,0,,0,0,0,0,0,0,0,0,1,1,,,,-,0,0,0,,,,,,,"
    ",,,,,,,,,,,,,,,\n"
    "be,node-3,0,0,0,0,,0,0,0,,0,,0,0,0,0,UP,1,1,0,0,0,2,0,,1,3,3,,0,,2,0"
    ",,0,L7OK,200,0,0,0,0,0,0,0,,,,0,0,0,,,,,-1,,,0,0,0,0,,,,Layer7 check"
    " passed,,1,2,2,,,,127.0.1.3:35603,,http,,,,,,,,0,0,0,,,0,,0,0,0,0,0,"
    "0,0,0,1,1,,,,-,0,0,0,,,,,,,,,,,,,,,,,,,,,,\n"
    "be,BACKEND,0,0,0,0,999,0,0,0,0,0,,0,0,0,0,UP,2,2,0,,0,2,0,,1,3,0,,0,"
    ",1,0,,0,,,,0,0,0,0,0,0,,,,0,0,0,0,0,0,0,-1,,,0,0,0,0,,,,,,,,,,,,,,ht"
    "tp,roundrobin,,,,,,,0,0,0,0,0,,,0,0,0,0,0,,,,,2,0,0,0,-,0,0,0,0,0,0,"
    "0,0,0,0,0,0,0,0,0,0,0,0,22,22,15156,396,0,0,\n"
    "\n"
    "1\n"
    "# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_stat"
    "e srv_uweight srv_iweight srv_time_since_last_change srv_check_statu"
    "s srv_check_result srv_check_health srv_check_state srv_agent_state "
    "bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_s"
    "sl srv_check_port srv_check_addr srv_agent_addr srv_agent_port\n"
    "3 be 1 node-1 127.0.1.1 2 0 1 1 2 15 3 2 6 0 0 0 - 35603 - 0 0 - - 0"
    "\n"
    "3 be 2 node-2 127.0.1.2 0 1 1 1 0 15 3 0 14 0 0 0 - 35603 - 0 0 - - "
    "0\n"
    "3 be 3 node-3 127.0.1.3 2 0 1 1 2 15 3 2 6 0 0 0 - 35603 - 0 0 - - 0"
    "\n"
    "\n";

static const char reply_drain2[] =
    "# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,er"
    "eq,econ,eresp,wretr,wredis,status,weight,act,bck,chkfail,chkdown,las"
    "tchg,downtime,qlimit,pid,iid,sid,throttle,lbtot,tracked,type,rate,ra"
    "te_lim,rate_max,check_status,check_code,check_duration,hrsp_1xx,hrsp"
    "_2xx,hrsp_3xx,hrsp_4xx,hrsp_5xx,hrsp_other,hanafail,req_rate,req_rat"
    "e_max,req_tot,cli_abrt,srv_abrt,comp_in,comp_out,comp_byp,comp_rsp,l"
    "astsess,last_chk,last_agt,qtime,ctime,rtime,ttime,agent_status,agent"
    "_code,agent_duration,check_desc,agent_desc,check_rise,check_fall,che"
    "ck_health,agent_rise,agent_fall,agent_health,addr,cookie,mode,algo,c"
    "onn_rate,conn_rate_max,conn_tot,intercepted,dcon,dses,wrew,connect,r"
    "euse,cache_lookups,cache_hits,srv_icur,src_ilim,qtime_max,ctime_max,"
    "rtime_max,ttime_max,eint,idle_conn_cur,safe_conn_cur,used_conn_cur,n"
    "eed_conn_est,uweight,agg_server_status,agg_server_check_status,agg_c"
    "heck_status,-,ssl_sess,ssl_reused_sess,ssl_failed_handshake,h2_heade"
    "rs_rcvd,h2_data_rcvd,h2_settings_rcvd,h2_rst_stream_rcvd,h2_goaway_r"
    "cvd,h2_detected_conn_protocol_errors,h2_detected_strm_protocol_error"
    "s,h2_rst_stream_resp,h2_goaway_resp,h2_open_connections,h2_backend_o"
    "pen_streams,h2_total_connections,h2_backend_total_streams,h1_open_co"
    "nnections,h1_open_streams,h1_total_connections,h1_total_streams,h1_b"
    "ytes_in,h1_bytes_out,h1_spliced_bytes_in,h1_spliced_bytes_out,\n"
    "be,node-1,0,0,0,0,,0,0,0,,0,,0,0,0,0,UP,1,1,0,0,0,2,0,,1,3,1,,0,,2,0"
    ",,0,L7OK,200,1,0,0,0,0,0,0,,,,0,0,0,,,,,-1,,,0,0,0,0,,,,Layer7 check"
    " passed,,1,2,2,,,,127.0.1.1:35603,,http,,,,,,,,0,0,0,,,0,,0,0,0,0,0,"
    "0,0,0,1,1,,,,-,0,0,0,,,,,,,,,,,,,,,,,,,,,,\n"
    "be,node-2,0,0,0,0,,0,0,0,,0,,0,0,0,0,DRAIN 1/2,1,1,0,0,1,0,0,,1,3,2,"
    ",0,,2,0,,0,L7OK,200,1,0,0,0,0,0,0,,,,0,0,0,,,,,-1,,,0,0,0,0,,,,Layer"
    "7 check passed,,1,2,1,,,,127.0.1.2:35603,,http,,,,,,,,0,0,0,,,0,,0,0"
    ",0,0,0,0,0,0,1,1,,,,-,0,0,0,,,,,,,,,,,,,,,,,,,,,,\n"
    "be,node-3,0,0,0,0,,0,0,0,,0,,0,0,0,0,UP,1,1,0,0,0,2,0,,1,3,3,,0,,2,0"
    ",,0,L7OK,200,0,0,0,0,0,0,0,,,,0,0,0,,,,,-1,,,0,0,0,0,,,,Layer7 check"
    " passed,,1,2,2,,,,127.0.1.3:35603,,http,,,,,,,,0,0,0,,,0,,0,0,0,0,0,"
    "0,0,0,1,1,,,,-,0,0,0,,,,,,,,,,,,,,,,,,,,,,\n"
    "be,BACKEND,0,0,0,0,999,0,0,0,0,0,,0,0,0,0,UP,2,2,0,,0,2,0,,1,3,0,,0,"
    ",1,0,,0,,,,0,0,0,0,0,0,,,,0,0,0,0,0,0,0,-1,,,0,0,0,0,,,,,,,,,,,,,,ht"
    "tp,roundrobin,,,,,,,0,0,0,0,0,,,0,0,0,0,0,,,,,2,0,0,0,-,0,0,0,0,0,0,"
    "0,0,0,0,0,0,0,0,0,0,0,0,22,22,15156,396,0,0,\n"
    "\n"
    "1\n"
    "# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_stat"
    "e srv_uweight srv_iweight srv_time_since_last_change srv_check_statu"
    "s srv_check_result srv_check_health srv_check_state srv_agent_state "
    "bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_s"
    "sl srv_check_port srv_check_addr srv_agent_addr srv_agent_port\n"
    "3 be 1 node-1 127.0.1.1 2 0 1 1 2 15 3 2 6 0 0 0 - 35603 - 0 0 - - 0"
    "\n"
    "3 be 2 node-2 127.0.1.2 2 8 1 1 0 15 3 1 6 0 0 0 - 35603 - 0 0 - - 0"
    "\n"
    "3 be 3 node-3 127.0.1.3 2 0 1 1 2 15 3 2 6 0 0 0 - 35603 - 0 0 - - 0"
    "\n"
    "\n";

static const char reply_down3[] =
    "# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,er"
    "eq,econ,eresp,wretr,wredis,status,weight,act,bck,chkfail,chkdown,las"
    "tchg,downtime,qlimit,pid,iid,sid,throttle,lbtot,tracked,type,rate,ra"
    "te_lim,rate_max,check_status,check_code,check_duration,hrsp_1xx,hrsp"
    "_2xx,hrsp_3xx,hrsp_4xx,hrsp_5xx,hrsp_other,hanafail,req_rate,req_rat"
    "e_max,req_tot,cli_abrt,srv_abrt,comp_in,comp_out,comp_byp,comp_rsp,l"
    "astsess,last_chk,last_agt,qtime,ctime,rtime,ttime,agent_status,agent"
    "_code,agent_duration,check_desc,agent_desc,check_rise,check_fall,che"
    "ck_health,agent_rise,agent_fall,agent_health,addr,cookie,mode,algo,c"
    "onn_rate,conn_rate_max,conn_tot,intercepted,dcon,dses,wrew,connect,r"
    "euse,cache_lookups,cache_hits,srv_icur,src_ilim,qtime_max,ctime_max,"
    "rtime_max,ttime_max,eint,idle_conn_cur,safe_conn_cur,used_conn_cur,n"
    "eed_conn_est,uweight,agg_server_status,agg_server_check_status,agg_c"
    "heck_status,-,ssl_sess,ssl_reused_sess,ssl_failed_handshake,h2_heade"
    "rs_rcvd,h2_data_rcvd,h2_settings_rcvd,h2_rst_stream_rcvd,h2_goaway_r"
    "cvd,h2_detected_conn_protocol_errors,h2_detected_strm_protocol_error"
    "s,h2_rst_stream_resp,h2_goaway_resp,h2_open_connections,h2_backend_o"
    "pen_streams,h2_total_connections,h2_backend_total_streams,h1_open_co"
    "nnections,h1_open_streams,h1_total_connections,h1_total_streams,h1_b"
    "ytes_in,h1_bytes_out,h1_spliced_bytes_in,h1_spliced_bytes_out,\n"
    "be,node-1,0,0,0,0,,0,0,0,,0,,0,0,0,0,UP,1,1,0,0,0,3,0,,1,3,1,,0,,2,0"
    ",,0,L7OK,200,1,0,0,0,0,0,0,,,,0,0,0,,,,,-1,,,0,0,0,0,,,,Layer7 check"
    " passed,,1,2,2,,,,127.0.1.1:35603,,http,,,,,,,,0,0,0,,,0,,0,0,0,0,0,"
    "0,0,0,1,1,,,,-,0,0,0,,,,,,,,,,,,,,,,,,,,,,\n"
    "be,node-2,0,0,0,0,,0,0,0,,0,,0,0,0,0,UP,1,1,0,0,1,1,0,,1,3,2,,0,,2,0"
    ",,0,L7OK,200,1,0,0,0,0,0,0,,,,0,0,0,,,,,-1,,,0,0,0,0,,,,Layer7 check"
    " passed,,1,2,2,,,,127.0.1.2:35603,,http,,,,,,,,0,0,0,,,0,,0,0,0,0,0,"
    "0,0,0,1,1,,,,-,0,0,0,,,,,,,,,,,,,,,,,,,,,,\n"
    "be,node-3,0,0,0,0,,0,0,0,,0,,0,0,0,0,DOWN,1,1,0,2,1,1,1,,1,3,3,,0,,2"
    ",0,,0,L4CON,,0,0,0,0,0,0,0,,,,0,0,0,,,,,-1,Connection refused,,0,0,0"
    ",0,,,,Layer4 connection problem,,1,2,0,,,,127.0.1.3:35603,,http,,,,,"
    ",,,0,0,0,,,0,,0,0,0,0,0,0,0,0,1,1,,,,-,0,0,0,,,,,,,,,,,,,,,,,,,,,,\n"
    "be,BACKEND,0,0,0,0,999,0,0,0,0,0,,0,0,0,0,UP,2,2,0,,0,3,0,,1,3,0,,0,"
    ",1,0,,0,,,,0,0,0,0,0,0,,,,0,0,0,0,0,0,0,-1,,,0,0,0,0,,,,,,,,,,,,,,ht"
    "tp,roundrobin,,,,,,,0,0,0,0,0,,,0,0,0,0,0,,,,,2,0,0,0,-,0,0,0,0,0,0,"
    "0,0,0,0,0,0,0,0,0,0,0,0,41,41,23075,630,0,0,\n"
    "\n"
    "1\n"
    "# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_stat"
    "e srv_uweight srv_iweight srv_time_since_last_change srv_check_statu"
    "s srv_check_result srv_check_health srv_check_state srv_agent_state "
    "bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_s"
    "sl srv_check_port srv_check_addr srv_agent_addr srv_agent_port\n"
    "3 be 1 node-1 127.0.1.1 2 0 1 1 3 15 3 2 6 0 0 0 - 35603 - 0 0 - - 0"
    "\n"
    "3 be 2 node-2 127.0.1.2 2 0 1 1 1 15 3 2 6 0 0 0 - 35603 - 0 0 - - 0"
    "\n"
    "3 be 3 node-3 127.0.1.3 0 0 1 1 1 8 2 0 6 0 0 0 - 35603 - 0 0 - - 0"
    "\n"
    "\n";

static const char reply_drain_down3[] =
    "# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,er"
    "eq,econ,eresp,wretr,wredis,status,weight,act,bck,chkfail,chkdown,las"
    "tchg,downtime,qlimit,pid,iid,sid,throttle,lbtot,tracked,type,rate,ra"
    "te_lim,rate_max,check_status,check_code,check_duration,hrsp_1xx,hrsp"
    "_2xx,hrsp_3xx,hrsp_4xx,hrsp_5xx,hrsp_other,hanafail,req_rate,req_rat"
    "e_max,req_tot,cli_abrt,srv_abrt,comp_in,comp_out,comp_byp,comp_rsp,l"
    "astsess,last_chk,last_agt,qtime,ctime,rtime,ttime,agent_status,agent"
    "_code,agent_duration,check_desc,agent_desc,check_rise,check_fall,che"
    "ck_health,agent_rise,agent_fall,agent_health,addr,cookie,mode,algo,c"
    "onn_rate,conn_rate_max,conn_tot,intercepted,dcon,dses,wrew,connect,r"
    "euse,cache_lookups,cache_hits,srv_icur,src_ilim,qtime_max,ctime_max,"
    "rtime_max,ttime_max,eint,idle_conn_cur,safe_conn_cur,used_conn_cur,n"
    "eed_conn_est,uweight,agg_server_status,agg_server_check_status,agg_c"
    "heck_status,-,ssl_sess,ssl_reused_sess,ssl_failed_handshake,h2_heade"
    "rs_rcvd,h2_data_rcvd,h2_settings_rcvd,h2_rst_stream_rcvd,h2_goaway_r"
    "cvd,h2_detected_conn_protocol_errors,h2_detected_strm_protocol_error"
    "s,h2_rst_stream_resp,h2_goaway_resp,h2_open_connections,h2_backend_o"
    "pen_streams,h2_total_connections,h2_backend_total_streams,h1_open_co"
    "nnections,h1_open_streams,h1_total_connections,h1_total_streams,h1_b"
    "ytes_in,h1_bytes_out,h1_spliced_bytes_in,h1_spliced_bytes_out,\n"
    "be,node-1,0,0,0,0,,0,0,0,,0,,0,0,0,0,UP,1,1,0,0,0,3,0,,1,3,1,,0,,2,0"
    ",,0,L7OK,200,1,0,0,0,0,0,0,,,,0,0,0,,,,,-1,,,0,0,0,0,,,,Layer7 check"
    " passed,,1,2,2,,,,127.0.1.1:35603,,http,,,,,,,,0,0,0,,,0,,0,0,0,0,0,"
    "0,0,0,1,1,,,,-,0,0,0,,,,,,,,,,,,,,,,,,,,,,\n"
    "be,node-2,0,0,0,0,,0,0,0,,0,,0,0,0,0,UP,1,1,0,0,1,1,0,,1,3,2,,0,,2,0"
    ",,0,L7OK,200,1,0,0,0,0,0,0,,,,0,0,0,,,,,-1,,,0,0,0,0,,,,Layer7 check"
    " passed,,1,2,2,,,,127.0.1.2:35603,,http,,,,,,,,0,0,0,,,0,,0,0,0,0,0,"
    "0,0,0,1,1,,,,-,0,0,0,,,,,,,,,,,,,,,,,,,,,,\n"
    "be,node-3,0,0,0,0,,0,0,0,,0,,0,0,0,0,DOWN,1,1,0,2,1,0,0,,1,3,3,,0,,2"
    ",0,,0,L4CON,,0,0,0,0,0,0,0,,,,0,0,0,,,,,-1,Connection refused,,0,0,0"
    ",0,,,,Layer4 connection problem,,1,2,0,,,,127.0.1.3:35603,,http,,,,,"
    ",,,0,0,0,,,0,,0,0,0,0,0,0,0,0,1,1,,,,-,0,0,0,,,,,,,,,,,,,,,,,,,,,,\n"
    "be,BACKEND,0,0,0,0,999,0,0,0,0,0,,0,0,0,0,UP,2,2,0,,0,3,0,,1,3,0,,0,"
    ",1,0,,0,,,,0,0,0,0,0,0,,,,0,0,0,0,0,0,0,-1,,,0,0,0,0,,,,,,,,,,,,,,ht"
    "tp,roundrobin,,,,,,,0,0,0,0,0,,,0,0,0,0,0,,,,,2,0,0,0,-,0,0,0,0,0,0,"
    "0,0,0,0,0,0,0,0,0,0,0,0,41,41,23075,630,0,0,\n"
    "\n"
    "1\n"
    "# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_stat"
    "e srv_uweight srv_iweight srv_time_since_last_change srv_check_statu"
    "s srv_check_result srv_check_health srv_check_state srv_agent_state "
    "bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_s"
    "sl srv_check_port srv_check_addr srv_agent_addr srv_agent_port\n"
    "3 be 1 node-1 127.0.1.1 2 0 1 1 3 15 3 2 6 0 0 0 - 35603 - 0 0 - - 0"
    "\n"
    "3 be 2 node-2 127.0.1.2 2 0 1 1 1 15 3 2 6 0 0 0 - 35603 - 0 0 - - 0"
    "\n"
    "3 be 3 node-3 127.0.1.3 0 8 1 1 0 8 2 0 6 0 0 0 - 35603 - 0 0 - - 0"
    "\n"
    "\n";

static const char reply_alldown[] =
    "# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,er"
    "eq,econ,eresp,wretr,wredis,status,weight,act,bck,chkfail,chkdown,las"
    "tchg,downtime,qlimit,pid,iid,sid,throttle,lbtot,tracked,type,rate,ra"
    "te_lim,rate_max,check_status,check_code,check_duration,hrsp_1xx,hrsp"
    "_2xx,hrsp_3xx,hrsp_4xx,hrsp_5xx,hrsp_other,hanafail,req_rate,req_rat"
    "e_max,req_tot,cli_abrt,srv_abrt,comp_in,comp_out,comp_byp,comp_rsp,l"
    "astsess,last_chk,last_agt,qtime,ctime,rtime,ttime,agent_status,agent"
    "_code,agent_duration,check_desc,agent_desc,check_rise,check_fall,che"
    "ck_health,agent_rise,agent_fall,agent_health,addr,cookie,mode,algo,c"
    "onn_rate,conn_rate_max,conn_tot,intercepted,dcon,dses,wrew,connect,r"
    "euse,cache_lookups,cache_hits,srv_icur,src_ilim,qtime_max,ctime_max,"
    "rtime_max,ttime_max,eint,idle_conn_cur,safe_conn_cur,used_conn_cur,n"
    "eed_conn_est,uweight,agg_server_status,agg_server_check_status,agg_c"
    "heck_status,-,ssl_sess,ssl_reused_sess,ssl_failed_handshake,h2_heade"
    "rs_rcvd,h2_data_rcvd,h2_settings_rcvd,h2_rst_stream_rcvd,h2_goaway_r"
    "cvd,h2_detected_conn_protocol_errors,h2_detected_strm_protocol_error"
    "s,h2_rst_stream_resp,h2_goaway_resp,h2_open_connections,h2_backend_o"
    "pen_streams,h2_total_connections,h2_backend_total_streams,h1_open_co"
    "nnections,h1_open_streams,h1_total_connections,h1_total_streams,h1_b"
    "ytes_in,h1_bytes_out,h1_spliced_bytes_in,h1_spliced_bytes_out,\n"
    "be,node-1,0,0,0,0,,0,0,0,,0,,0,0,0,0,DOWN,1,1,0,2,1,2,2,,1,3,1,,0,,2"
    ",0,,0,L4CON,,0,0,0,0,0,0,0,,,,0,0,0,,,,,-1,Connection refused,,0,0,0"
    ",0,,,,Layer4 connection problem,,1,2,0,,,,127.0.1.1:35603,,http,,,,,"
    ",,,0,0,0,,,0,,0,0,0,0,0,0,0,0,1,1,,,,-,0,0,0,,,,,,,,,,,,,,,,,,,,,,\n"
    "be,node-2,0,0,0,0,,0,0,0,,0,,0,0,0,0,DOWN,1,1,0,2,2,1,1,,1,3,2,,0,,2"
    ",0,,0,L4CON,,0,0,0,0,0,0,0,,,,0,0,0,,,,,-1,Connection refused,,0,0,0"
    ",0,,,,Layer4 connection problem,,1,2,0,,,,127.0.1.2:35603,,http,,,,,"
    ",,,0,0,0,,,0,,0,0,0,0,0,0,0,0,1,1,,,,-,0,0,0,,,,,,,,,,,,,,,,,,,,,,\n"
    "be,node-3,0,0,0,0,,0,0,0,,0,,0,0,0,0,DOWN,1,1,0,2,1,2,2,,1,3,3,,0,,2"
    ",0,,0,L4CON,,0,0,0,0,0,0,0,,,,0,0,0,,,,,-1,Connection refused,,0,0,0"
    ",0,,,,Layer4 connection problem,,1,2,0,,,,127.0.1.3:35603,,http,,,,,"
    ",,,0,0,0,,,0,,0,0,0,0,0,0,0,0,1,1,,,,-,0,0,0,,,,,,,,,,,,,,,,,,,,,,\n"
    "be,BACKEND,0,0,0,0,999,0,0,0,0,0,,0,0,0,0,DOWN,0,0,0,,1,1,1,,1,3,0,,"
    "0,,1,0,,0,,,,0,0,0,0,0,0,,,,0,0,0,0,0,0,0,-1,,,0,0,0,0,,,,,,,,,,,,,,"
    "http,roundrobin,,,,,,,0,0,0,0,0,,,0,0,0,0,0,,,,,0,0,0,0,-,0,0,0,0,0,"
    "0,0,0,0,0,0,0,0,0,0,0,0,0,61,61,23075,630,0,0,\n"
    "\n"
    "1\n"
    "# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_stat"
    "e srv_uweight srv_iweight srv_time_since_last_change srv_check_statu"
    "s srv_check_result srv_check_health srv_check_state srv_agent_state "
    "bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_s"
    "sl srv_check_port srv_check_addr srv_agent_addr srv_agent_port\n"
    "3 be 1 node-1 127.0.1.1 0 0 1 1 2 8 2 0 6 0 0 0 - 35603 - 0 0 - - 0"
    "\n"
    "3 be 2 node-2 127.0.1.2 0 0 1 1 1 8 2 0 6 0 0 0 - 35603 - 0 0 - - 0"
    "\n"
    "3 be 3 node-3 127.0.1.3 0 0 1 1 2 8 2 0 6 0 0 0 - 35603 - 0 0 - - 0"
    "\n"
    "\n";

static const char reply_nobe[] =
    "No such proxy.\n"
    "\n"
    "Can't find backend.\n"
    "\n";

static const char reply_fe[] =
    "# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,er"
    "eq,econ,eresp,wretr,wredis,status,weight,act,bck,chkfail,chkdown,las"
    "tchg,downtime,qlimit,pid,iid,sid,throttle,lbtot,tracked,type,rate,ra"
    "te_lim,rate_max,check_status,check_code,check_duration,hrsp_1xx,hrsp"
    "_2xx,hrsp_3xx,hrsp_4xx,hrsp_5xx,hrsp_other,hanafail,req_rate,req_rat"
    "e_max,req_tot,cli_abrt,srv_abrt,comp_in,comp_out,comp_byp,comp_rsp,l"
    "astsess,last_chk,last_agt,qtime,ctime,rtime,ttime,agent_status,agent"
    "_code,agent_duration,check_desc,agent_desc,check_rise,check_fall,che"
    "ck_health,agent_rise,agent_fall,agent_health,addr,cookie,mode,algo,c"
    "onn_rate,conn_rate_max,conn_tot,intercepted,dcon,dses,wrew,connect,r"
    "euse,cache_lookups,cache_hits,srv_icur,src_ilim,qtime_max,ctime_max,"
    "rtime_max,ttime_max,eint,idle_conn_cur,safe_conn_cur,used_conn_cur,n"
    "eed_conn_est,uweight,agg_server_status,agg_server_check_status,agg_c"
    "heck_status,-,ssl_sess,ssl_reused_sess,ssl_failed_handshake,h2_heade"
    "rs_rcvd,h2_data_rcvd,h2_settings_rcvd,h2_rst_stream_rcvd,h2_goaway_r"
    "cvd,h2_detected_conn_protocol_errors,h2_detected_strm_protocol_error"
    "s,h2_rst_stream_resp,h2_goaway_resp,h2_open_connections,h2_backend_o"
    "pen_streams,h2_total_connections,h2_backend_total_streams,h1_open_co"
    "nnections,h1_open_streams,h1_total_connections,h1_total_streams,h1_b"
    "ytes_in,h1_bytes_out,h1_spliced_bytes_in,h1_spliced_bytes_out,\n"
    "\n"
    "Can't find backend.\n"
    "\n";

enum srv_mode {
	SRV_SCRIPT,  /* answer from the script below */
	SRV_SILENT,  /* read the command, never answer */
	SRV_RESET,   /* read the command, close with an RST */
	SRV_CUT,     /* half of the show stat reply, then close */
	SRV_HUGE,    /* 8 KiB of rows: past a 4 KiB max_reply */
};

struct server {
	struct event_base *base;
	enum srv_mode mode;
	int lfd;
	int port;
	char path[64];
	struct event *accept_ev;
	int cfd;
	struct event *read_ev;
	char in[512];
	size_t inlen;
	/* The script: the reply to the query, and after a set. */
	const char *stat;
	const char *after_set;   /* the query's reply once a set was done */
	const char *set_reply;   /* NULL: "\n" (success) */
	int stop_after_set;      /* stop listening once the set is answered */
	char cmds[8][512];
	int ncmds;
};

struct fixture {
	const struct troika_plugin *p;
	void *dl;
	struct fake_host *fh;
	void *state;
	struct server srv;
	int fds_before;
};

static void
server_write(int fd, const char *s, size_t len)
{
	assert_int_equal(write(fd, s, len), (ssize_t)len);
}

static void
server_close_conn(struct server *s)
{
	if (s->read_ev != NULL)
		event_free(s->read_ev);
	s->read_ev = NULL;
	if (s->cfd >= 0)
		close(s->cfd);
	s->cfd = -1;
	s->inlen = 0;
}

static void
server_stop_listening(struct server *s)
{
	if (s->accept_ev != NULL)
		event_free(s->accept_ev);
	s->accept_ev = NULL;
	if (s->lfd >= 0)
		close(s->lfd);
	s->lfd = -1;
	if (s->path[0] != '\0')
		unlink(s->path);
}

static void
server_answer(struct server *s, const char *cmd)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };
	const char *r;

	switch (s->mode) {
	case SRV_SILENT:
		return;
	case SRV_RESET:
		setsockopt(s->cfd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		break;
	case SRV_CUT:
		server_write(s->cfd, s->stat, strlen(s->stat) / 2);
		break;
	case SRV_HUGE:
		for (int i = 0; i < 64; i++)
			server_write(s->cfd, reply_allup, 128);
		break;
	case SRV_SCRIPT:
		if (strncmp(cmd, "set server ", 11) == 0) {
			r = s->set_reply != NULL ? s->set_reply : "\n";
			server_write(s->cfd, r, strlen(r));
			if (s->set_reply == NULL && s->after_set != NULL)
				s->stat = s->after_set;
			if (s->stop_after_set)
				server_stop_listening(s);
		} else {
			server_write(s->cfd, s->stat, strlen(s->stat));
		}
		break;
	}
	server_close_conn(s);
}

static void
server_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct server *s = arg;
	ssize_t n;
	char *nl;

	(void)what;
	n = read(fd, s->in + s->inlen, sizeof(s->in) - 1 - s->inlen);
	if (n <= 0) {
		server_close_conn(s);
		return;
	}
	s->inlen += (size_t)n;
	s->in[s->inlen] = '\0';
	if ((nl = strchr(s->in, '\n')) == NULL)
		return;
	assert_true(s->ncmds < 8);
	snprintf(s->cmds[s->ncmds++], sizeof(s->cmds[0]), "%s", s->in);
	server_answer(s, s->cmds[s->ncmds - 1]);
}

static void
server_accept_cb(evutil_socket_t fd, short what, void *arg)
{
	struct server *s = arg;

	(void)what;
	server_close_conn(s); /* a silent one left open */
	s->cfd = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
	assert_true(s->cfd >= 0);
	s->read_ev = event_new(s->base, s->cfd, EV_READ | EV_PERSIST,
	    server_read_cb, s);
	assert_non_null(s->read_ev);
	event_add(s->read_ev, NULL);
}

static void
server_listen(struct fixture *f, int fd)
{
	struct server *s = &f->srv;

	assert_true(fd >= 0);
	assert_int_equal(listen(fd, 8), 0);
	s->lfd = fd;
	s->base = fake_host_base(f->fh);
	s->accept_ev = event_new(s->base, fd, EV_READ | EV_PERSIST,
	    server_accept_cb, s);
	assert_non_null(s->accept_ev);
	event_add(s->accept_ev, NULL);
}

/*
 * A TCP socket bound to 127.0.0.1:*ret_port, an ephemeral port when it
 * is 0 (a test's later servers take the port of its first: the instance
 * keeps its address).
 */
static int
tcp_bound(int *ret_port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int one = 1;

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sin.sin_port = htons((uint16_t)*ret_port);
	assert_true(fd >= 0);
	assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one,
	    sizeof(one)), 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, len), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	*ret_port = ntohs(sin.sin_port);
	return fd;
}

/* Serve on TCP and point the check's address at it. */
static void
server_start(struct fixture *f, enum srv_mode mode, const char *stat)
{
	char addr[64];

	f->srv.mode = mode;
	f->srv.stat = stat;
	f->srv.after_set = NULL;
	f->srv.set_reply = NULL;
	f->srv.stop_after_set = 0;
	server_listen(f, tcp_bound(&f->srv.port));
	snprintf(addr, sizeof(addr), "ipv4@127.0.0.1:%d", f->srv.port);
	fake_host_set_string(f->fh, "address", addr);
	fake_host_set_string(f->fh, "backend", "be");
}

static void
server_stop(struct server *s)
{
	server_close_conn(s);
	server_stop_listening(s);
}

static int
group_setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	f->p = fake_host_load_plugin(HAPROXY_PLUGIN, &f->dl);
	*state = f;
	return 0;
}

static int
group_teardown(void **state)
{
	struct fixture *f = *state;

	dlclose(f->dl);
	free(f);
	return 0;
}

static int
setup(void **state)
{
	struct fixture *f = *state;

	f->fds_before = fake_host_count_fds();
	f->fh = fake_host_new(f->p->options);
	f->state = NULL;
	memset(&f->srv, 0, sizeof(f->srv));
	f->srv.lfd = f->srv.cfd = -1;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	f->p->instance_free(f->state);
	f->state = NULL;
	server_stop(&f->srv);
	assert_int_equal(fake_host_violations(f->fh), 0);
	fake_host_free(f->fh);
	f->fh = NULL;
	assert_int_equal(fake_host_count_fds(), f->fds_before);
	return 0;
}

static void
assert_contains(const char *haystack, const char *needle)
{
	if (haystack == NULL || strstr(haystack, needle) == NULL)
		fail_msg("\"%s\" does not contain \"%s\"",
		    haystack != NULL ? haystack : "(null)", needle);
}

/*
 * One check run (name NULL) or action, waited for; checks what every
 * result must satisfy: reported once, not inside check(), one line, and
 * nothing of the plugin's left in the event base.
 */
static const struct fake_result *
run(struct fixture *f, const char *name, const char *arg, int64_t deadline)
{
	struct troika_task *task = fake_host_task(f->fh, deadline);
	unsigned before = fake_host_done_count(f->fh);
	const char *argv[1] = { arg };
	const struct fake_result *r;

	if (name == NULL)
		fake_host_check(f->fh, f->p, f->state, task);
	else
		fake_host_action(f->fh, f->p, f->state, task, name, argv,
		    arg != NULL ? 1 : 0);
	assert_int_equal(fake_host_done_count(f->fh), before);
	assert_int_equal(fake_host_wait_done(f->fh, before + 1,
	    (int)deadline + 2000), 0);
	r = fake_host_last(f->fh);
	assert_ptr_equal(r->task, task);
	assert_non_null(r->message);
	assert_null(strchr(r->message, '\n'));
	server_close_conn(&f->srv);
	server_stop_listening(&f->srv);
	assert_int_equal(fake_host_events_pending(f->fh), 0);
	return r;
}

static const struct fake_result *
run_check(struct fixture *f)
{
	return run(f, NULL, NULL, 2000);
}

static double
sample(const struct fake_result *r, const char *name, const char *server)
{
	const struct fake_sample *s = fake_result_sample(r, name,
	    server != NULL ? "server" : NULL, server);

	if (s == NULL)
		fail_msg("no sample %s for %s", name, server ? server : "-");
	return s->value;
}

static void
new_instance(struct fixture *f)
{
	assert_int_equal(fake_host_instance_new(f->fh, f->p, &f->state), 0);
}

/* ---- the descriptor and the options ---- */

static void
test_descriptor(void **state)
{
	struct fixture *f = *state;
	int n = 0;

	assert_string_equal(f->p->name, "haproxy");
	assert_int_equal(f->p->exec_model, TROIKA_EXEC_ASYNC);
	assert_non_null(f->p->cancel);
	assert_non_null(f->p->action);
	for (const struct troika_action *a = f->p->actions; a->name; a++)
		n++;
	assert_int_equal(n, 4);
	assert_null(dlsym(f->dl, "haproxy_stat_parse"));
}

static void
expect_refused_config(struct fixture *f, const char *needle)
{
	assert_int_equal(fake_host_instance_new(f->fh, f->p, &f->state),
	    -EINVAL);
	f->state = NULL;
	assert_true(fake_host_log_contains(f->fh, needle));
}

static void
test_config_errors(void **state)
{
	struct fixture *f = *state;
	const char *bad[] = { "node-1", "no de" };
	char longpath[200];

	fake_host_set_string(f->fh, "backend", "be");
	expect_refused_config(f, "give either socket");
	fake_host_set_string(f->fh, "socket", "/tmp/x.sock");
	fake_host_set_string(f->fh, "address", "127.0.0.1:1");
	expect_refused_config(f, "not both");
	fake_host_unset(f->fh, "socket");
	fake_host_set_string(f->fh, "address", "localhost:9999");
	expect_refused_config(f, "names are not resolved");
	fake_host_set_string(f->fh, "address", "127.0.0.1");
	expect_refused_config(f, "is not host:port");
	fake_host_set_string(f->fh, "address", "[::1:99");
	expect_refused_config(f, "is not host:port");
	fake_host_set_string(f->fh, "address", "127.0.0.1:9999");
	fake_host_set_string(f->fh, "backend", "be;shutdown sessions");
	expect_refused_config(f, "is not a HAProxy name");
	fake_host_set_string(f->fh, "backend", "be");
	fake_host_set_list(f->fh, "servers", bad, 0);
	expect_refused_config(f, "servers is empty");
	fake_host_set_list(f->fh, "servers", bad, 2);
	expect_refused_config(f, "\"no de\" is not a HAProxy name");
	fake_host_unset(f->fh, "servers");
	fake_host_unset(f->fh, "address");
	memset(longpath, 'a', sizeof(longpath) - 1);
	longpath[0] = '/';
	longpath[sizeof(longpath) - 1] = '\0';
	fake_host_set_string(f->fh, "socket", longpath);
	expect_refused_config(f, "longer than a unix socket takes");
}

/* ---- checks ---- */

static void
test_all_up(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;

	server_start(f, SRV_SCRIPT, reply_allup);
	new_instance(f);
	r = run_check(f);
	assert_int_equal(r->status, TROIKA_STATUS_OK);
	assert_int_equal(r->evidence, TROIKA_EVIDENCE_NONE);
	assert_string_equal(r->message, "backend be: node-1 UP, node-2 UP, "
	    "node-3 UP; 3 of 3 servers UP");
	assert_int_equal(f->srv.ncmds, 1);
	assert_string_equal(f->srv.cmds[0], QUERY);
	for (int i = 1; i <= 3; i++) {
		char name[16], field[16];

		snprintf(name, sizeof(name), "node-%d", i);
		snprintf(field, sizeof(field), "node_%d", i);
		assert_true(sample(r, "haproxy_server_up", name) == 1);
		assert_true(sample(r, "troika_haproxy_server_disabled",
		    name) == 0);
		assert_true(sample(r, "haproxy_server_weight", name) == 1);
		assert_true(sample(r, "haproxy_server_current_sessions",
		    name) == 0);
		assert_string_equal(fake_result_field(r, field), "UP");
	}
	assert_true(sample(r, "haproxy_backend_up", NULL) == 1);
	assert_true(sample(r, "haproxy_backend_active_servers", NULL) == 3);
	assert_string_equal(fake_sample_label(fake_result_sample(r,
	    "haproxy_backend_up", NULL, NULL), "backend"), "be");
	assert_int_equal(fake_result_sample(r, "haproxy_server_sessions_total",
	    NULL, NULL)->type, TROIKA_METRIC_COUNTER);
	assert_string_equal(fake_result_field(r, "states"),
	    "node-1=UP node-2=UP node-3=UP");
}

static void
test_one_down_is_warning(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;

	server_start(f, SRV_SCRIPT, reply_down3);
	new_instance(f);
	r = run_check(f);
	assert_int_equal(r->status, TROIKA_STATUS_WARNING);
	assert_contains(r->message, "node-3 DOWN; 2 of 3 servers UP");
	assert_true(sample(r, "haproxy_server_up", "node-3") == 0);
	assert_true(sample(r, "haproxy_server_up", "node-1") == 1);
	assert_true(sample(r, "haproxy_server_check_failures_total",
	    "node-3") >= 1);
	assert_string_equal(fake_result_field(r, "node_3"), "DOWN");
}

static void
test_maint_and_drain_are_ok(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;

	server_start(f, SRV_SCRIPT, reply_maint2);
	new_instance(f);
	r = run_check(f);
	assert_int_equal(r->status, TROIKA_STATUS_OK);
	assert_contains(r->message, "node-2 MAINT");
	assert_true(sample(r, "troika_haproxy_server_disabled", "node-2") == 1);
	assert_true(sample(r, "haproxy_server_up", "node-2") == 0);
	assert_string_equal(fake_result_field(r, "node_2"), "MAINT");

	/* Drained and DOWN by its check: show stat says DOWN, the admin
	 * state says an operator drained it, so it is no problem. */
	server_start(f, SRV_SCRIPT, reply_drain_down3);
	r = run_check(f);
	assert_int_equal(r->status, TROIKA_STATUS_OK);
	assert_string_equal(fake_result_field(r, "node_3"), "DRAIN");
	assert_true(sample(r, "haproxy_server_up", "node-3") == 0);
	assert_true(sample(r, "troika_haproxy_server_disabled", "node-3") == 1);
}

static void
test_all_down_is_critical(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;

	server_start(f, SRV_SCRIPT, reply_alldown);
	new_instance(f);
	r = run_check(f);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_int_equal(r->evidence, TROIKA_EVIDENCE_CERTAIN);
	assert_contains(r->message, "no server of backend be is UP");
	assert_true(sample(r, "haproxy_backend_up", NULL) == 0);
}

static void
test_watched_servers(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;
	const char *pair[] = { "node-1", "node-2" };
	const char *typo[] = { "node-1", "node-4" };

	/* node-3 is down but not watched. */
	fake_host_set_list(f->fh, "servers", pair, 2);
	server_start(f, SRV_SCRIPT, reply_down3);
	new_instance(f);
	r = run_check(f);
	assert_int_equal(r->status, TROIKA_STATUS_OK);
	assert_null(fake_result_sample(r, "haproxy_server_up", "server",
	    "node-3"));
	assert_null(fake_result_field(r, "node_3"));
	assert_string_equal(fake_result_field(r, "states"),
	    "node-1=UP node-2=UP");
	f->p->instance_free(f->state);

	fake_host_set_list(f->fh, "servers", typo, 2);
	server_start(f, SRV_SCRIPT, reply_allup);
	new_instance(f);
	r = run_check(f);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_int_equal(r->evidence, TROIKA_EVIDENCE_CERTAIN);
	assert_string_equal(r->message, "backend be has no server node-4");
	assert_string_equal(fake_result_field(r, "node_4"), "MISSING");
}

static void
test_no_backend(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;

	server_start(f, SRV_SCRIPT, reply_nobe);
	new_instance(f);
	r = run_check(f);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_int_equal(r->evidence, TROIKA_EVIDENCE_CERTAIN);
	assert_string_equal(r->message, "HAProxy has no backend be");
	assert_int_equal(r->nsamples, 0);

	/* A frontend of that name: rows, but no BACKEND among them. */
	server_start(f, SRV_SCRIPT, reply_fe);
	r = run_check(f);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_string_equal(r->message, "HAProxy has no backend be");
}

static void
test_refused(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;
	char addr[64];
	int port = 0, fd = tcp_bound(&port); /* bound, not listening */

	snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
	fake_host_set_string(f->fh, "address", addr);
	fake_host_set_string(f->fh, "backend", "be");
	new_instance(f);
	r = run_check(f);
	close(fd);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_int_equal(r->evidence, TROIKA_EVIDENCE_CERTAIN);
	assert_contains(r->message, "connection refused");
	assert_int_equal(r->nsamples, 0);
}

static void
test_unix_socket(void **state)
{
	struct fixture *f = *state;
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	const struct fake_result *r;
	int fd;

	snprintf(f->srv.path, sizeof(f->srv.path), "/tmp/troika-hap-%d.sock",
	    (int)getpid());
	unlink(f->srv.path);
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", f->srv.path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	f->srv.mode = SRV_SCRIPT;
	f->srv.stat = reply_allup;
	server_listen(f, fd);
	fake_host_set_string(f->fh, "socket", f->srv.path);
	fake_host_set_string(f->fh, "backend", "be");
	new_instance(f);
	r = run_check(f);
	assert_int_equal(r->status, TROIKA_STATUS_OK);
	assert_string_equal(f->srv.cmds[0], QUERY);

	/* The socket gone (HAProxy stopped and removed it): certain. */
	r = run_check(f);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_int_equal(r->evidence, TROIKA_EVIDENCE_CERTAIN);
	assert_contains(r->message, "no such socket");
}

static void
test_timeout(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;

	server_start(f, SRV_SILENT, reply_allup);
	new_instance(f);
	r = run(f, NULL, NULL, 300);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_int_equal(r->evidence, TROIKA_EVIDENCE_AMBIGUOUS);
	assert_contains(r->message, "timed out after 270 ms waiting for the "
	    "reply (show stat, 0 bytes read)");
}

static void
test_reset(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;

	server_start(f, SRV_RESET, reply_allup);
	new_instance(f);
	r = run_check(f);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_int_equal(r->evidence, TROIKA_EVIDENCE_CERTAIN);
	assert_contains(r->message, "connection reset");
}

static void
test_cut_short(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;

	server_start(f, SRV_CUT, reply_allup);
	new_instance(f);
	r = run_check(f);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_int_equal(r->evidence, TROIKA_EVIDENCE_AMBIGUOUS);
	assert_contains(r->message, "reply cut short");
}

static void
test_oversized(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;

	fake_host_set_size(f->fh, "max_reply", 4096);
	server_start(f, SRV_HUGE, reply_allup);
	new_instance(f);
	r = run_check(f);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_int_equal(r->evidence, TROIKA_EVIDENCE_AMBIGUOUS);
	assert_contains(r->message, "larger than max_reply (4096 bytes)");
}

static void
test_error_text(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;

	server_start(f, SRV_SCRIPT, "Permission denied\n\n");
	new_instance(f);
	r = run_check(f);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_int_equal(r->evidence, TROIKA_EVIDENCE_AMBIGUOUS);
	assert_contains(r->message, "HAProxy answered \"Permission denied\"");

	/* Rows that are not numbers where numbers belong. */
	server_start(f, SRV_SCRIPT, "# pxname,svname,status,scur\n"
	    "be,node-1,UP,lots\n\n1\n# be_name srv_name srv_op_state "
	    "srv_admin_state\nbe node-1 2 0\n\n");
	r = run_check(f);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_contains(r->message, "scur of node-1 is not a number");
}

static void
test_cancel(void **state)
{
	struct fixture *f = *state;
	struct troika_task *task;

	server_start(f, SRV_SILENT, reply_allup);
	new_instance(f);
	task = fake_host_task(f->fh, 5000);
	fake_host_check(f->fh, f->p, f->state, task);
	fake_host_run_for(f->fh, 100);
	assert_int_equal(f->srv.ncmds, 1);
	fake_host_cancel(f->fh, f->p, f->state, task);
	server_stop(&f->srv);
	assert_int_equal(fake_host_events_pending(f->fh), 0);
	fake_host_run_for(f->fh, 50);
	assert_int_equal(fake_host_done_count(f->fh), 0);
}

/* ---- actions ---- */

static void
test_disable(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;

	server_start(f, SRV_SCRIPT, reply_allup);
	f->srv.after_set = reply_maint2;
	new_instance(f);
	r = run(f, "disable", "node-2", 2000);
	assert_int_equal(r->status, TROIKA_STATUS_OK);
	assert_string_equal(r->message, "be/node-2 is MAINT (was UP)");
	assert_int_equal(f->srv.ncmds, 3);
	assert_string_equal(f->srv.cmds[0], QUERY);
	assert_string_equal(f->srv.cmds[1],
	    "set server be/node-2 state maint\n");
	assert_string_equal(f->srv.cmds[2], QUERY);
	assert_string_equal(fake_result_field(r, "server"), "node-2");
	assert_string_equal(fake_result_field(r, "state"), "MAINT");
	assert_string_equal(fake_result_field(r, "previous"), "UP");

	/* Again: nothing to do, nothing sent but the look. */
	f->srv.ncmds = 0;
	server_start(f, SRV_SCRIPT, reply_maint2);
	r = run(f, "disable", "node-2", 2000);
	assert_int_equal(r->status, TROIKA_STATUS_OK);
	assert_string_equal(r->message,
	    "be/node-2 is already MAINT; nothing to do");
	assert_int_equal(f->srv.ncmds, 1);
}

static void
test_drain(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;

	server_start(f, SRV_SCRIPT, reply_allup);
	f->srv.after_set = reply_drain2;
	new_instance(f);
	r = run(f, "drain", "node-2", 2000);
	assert_int_equal(r->status, TROIKA_STATUS_OK);
	assert_string_equal(f->srv.cmds[1],
	    "set server be/node-2 state drain\n");
	assert_string_equal(fake_result_field(r, "state"), "DRAIN");
}

static void
test_enable(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;

	server_start(f, SRV_SCRIPT, reply_maint2);
	f->srv.after_set = reply_allup;
	new_instance(f);
	r = run(f, "enable", "node-2", 2000);
	assert_int_equal(r->status, TROIKA_STATUS_OK);
	assert_string_equal(f->srv.cmds[1],
	    "set server be/node-2 state ready\n");
	assert_string_equal(r->message,
	    "be/node-2 back in rotation, now UP (was MAINT)");
	assert_string_equal(fake_result_field(r, "previous"), "MAINT");

	/* Out of DRAIN but DOWN by its health check: done, and said. */
	f->srv.ncmds = 0;
	server_start(f, SRV_SCRIPT, reply_drain_down3);
	f->srv.after_set = reply_down3;
	r = run(f, "enable", "node-3", 2000);
	assert_int_equal(r->status, TROIKA_STATUS_OK);
	assert_contains(r->message, "now DOWN (was DRAIN): its health check");
	assert_string_equal(fake_result_field(r, "state"), "DOWN");

	/* Already in rotation. */
	f->srv.ncmds = 0;
	server_start(f, SRV_SCRIPT, reply_allup);
	r = run(f, "enable", "node-1", 2000);
	assert_int_equal(r->status, TROIKA_STATUS_OK);
	assert_contains(r->message, "already in rotation");
	assert_int_equal(f->srv.ncmds, 1);
}

static void
test_action_refusals(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;

	server_start(f, SRV_SCRIPT, reply_allup);
	new_instance(f);
	r = run(f, "disable", "node-9", 2000);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_string_equal(r->message, "refused: backend be has no server "
	    "node-9 (its servers: node-1, node-2, node-3)");
	assert_int_equal(f->srv.ncmds, 1);

	/* Not even a name: nothing is sent at all. */
	f->srv.ncmds = 0;
	server_start(f, SRV_SCRIPT, reply_allup);
	r = run(f, "drain", "node-1;shutdown\nsessions", 2000);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_string_equal(r->message, "refused: \"node-1;shutdown?sessions\" "
	    "is not a HAProxy server name (letters, digits, \"-_.:\")");
	assert_int_equal(f->srv.ncmds, 0);

	/* HAProxy refuses the set (a socket below level admin). */
	server_start(f, SRV_SCRIPT, reply_allup);
	f->srv.set_reply = "Permission denied\n\n";
	r = run(f, "disable", "node-2", 2000);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_string_equal(r->message, "HAProxy refused set server "
	    "be/node-2 state maint: Permission denied");

	/* It accepts the set but the server is not in MAINT after it. */
	f->srv.ncmds = 0;
	server_start(f, SRV_SCRIPT, reply_allup);
	r = run(f, "disable", "node-2", 2000);
	assert_int_equal(f->srv.ncmds, 3);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_string_equal(r->message,
	    "be/node-2 is UP after set server state maint (was UP)");
}

static void
test_action_outcome_unknown(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;

	/* HAProxy gone right after the set: it may have happened. */
	server_start(f, SRV_SCRIPT, reply_allup);
	f->srv.after_set = reply_maint2;
	f->srv.stop_after_set = 1;
	new_instance(f);
	r = run(f, "disable", "node-2", 2000);
	assert_int_equal(r->status, TROIKA_STATUS_UNKNOWN);
	assert_contains(r->message, "connection refused; the set server was "
	    "sent, its outcome is not known");

	/* Refused before anything was sent: failed, nothing changed. */
	r = run(f, "disable", "node-2", 2000);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_int_equal(r->evidence, TROIKA_EVIDENCE_CERTAIN);
}

static void
test_state(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;

	server_start(f, SRV_SCRIPT, reply_drain_down3);
	new_instance(f);
	r = run(f, "state", NULL, 2000);
	assert_int_equal(r->status, TROIKA_STATUS_OK);
	assert_string_equal(fake_result_field(r, "node_1"), "UP");
	assert_string_equal(fake_result_field(r, "node_3"), "DRAIN");
	assert_string_equal(fake_result_field(r, "states"),
	    "node-1=UP node-2=UP node-3=DRAIN");
	assert_int_equal(r->nsamples, 0);

	server_start(f, SRV_SCRIPT, reply_maint2);
	r = run(f, "state", "node-2", 2000);
	assert_int_equal(r->status, TROIKA_STATUS_OK);
	assert_string_equal(r->message, "be/node-2 is MAINT");
	assert_string_equal(fake_result_field(r, "states"), "node-2=MAINT");
	assert_null(fake_result_field(r, "node_1"));

	server_start(f, SRV_SCRIPT, reply_maint2);
	r = run(f, "state", "node-7", 2000);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_contains(r->message, "has no server node-7");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_descriptor, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_config_errors, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_all_up, setup, teardown),
		cmocka_unit_test_setup_teardown(test_one_down_is_warning,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_maint_and_drain_are_ok,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_all_down_is_critical,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_watched_servers, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_no_backend, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unix_socket, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_timeout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reset, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cut_short, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_oversized, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_error_text, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
		cmocka_unit_test_setup_teardown(test_disable, setup, teardown),
		cmocka_unit_test_setup_teardown(test_drain, setup, teardown),
		cmocka_unit_test_setup_teardown(test_enable, setup, teardown),
		cmocka_unit_test_setup_teardown(test_action_refusals, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_action_outcome_unknown,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_state, setup, teardown),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
