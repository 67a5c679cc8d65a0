/*
 * dashboard.c - the one page of the dashboard, embedded in the library
 * (dashboard.html, pulled in by the assembler's .incbin at build time: no
 * CDN, no file to install). It reads everything from /api/v1 with the
 * token given in the URL fragment (/dashboard#token=...), which browsers
 * do not send to the server.
 */
#include "serve/serve_private.h"

__asm__(".section .rodata\n"
        ".global ad__dashboard_html\n"
        ".hidden ad__dashboard_html\n" /* internal, like every ad__ symbol */
        ".type ad__dashboard_html, @object\n"
        ".balign 16\n"
        "ad__dashboard_html:\n"
        ".incbin \"libautodeploy/src/serve/dashboard.html\"\n"
        ".global ad__dashboard_html_end\n"
        ".hidden ad__dashboard_html_end\n"
        "ad__dashboard_html_end:\n"
        ".byte 0\n"
        ".previous\n");
extern const char ad__dashboard_html[], ad__dashboard_html_end[];

int ad__serve_dashboard(struct MHD_Connection *c)
{
  struct MHD_Response *r = MHD_create_response_from_buffer(
      (size_t)(ad__dashboard_html_end - ad__dashboard_html), (void *)ad__dashboard_html,
      MHD_RESPMEM_PERSISTENT);
  if (!r)
    return MHD_NO;
  MHD_add_response_header(r, "Content-Type", "text/html; charset=utf-8");
  MHD_add_response_header(r, "Content-Security-Policy",
                          "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'");
  MHD_add_response_header(r, "Cache-Control", "no-store");
  int rc = MHD_queue_response(c, 200, r);
  MHD_destroy_response(r);
  return rc;
}
